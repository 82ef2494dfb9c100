//! How one streams group member moves towards its target assignment (Kafka's
//! `streams.CurrentAssignmentBuilder`, KIP-848's rules with tasks): tasks it must give up
//! are revoked first and the member keeps its epoch until it reports them gone; then it
//! reaches the assignment epoch and gets every target task no other member still holds.
//! A task is never on two members at once, which exactly-once processing relies on.

use std::collections::{BTreeMap, BTreeSet};

use super::assignor::Task;

/// Active, standby and warmup tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskSets {
    pub active: BTreeSet<Task>,
    pub standby: BTreeSet<Task>,
    pub warmup: BTreeSet<Task>,
}

impl TaskSets {
    pub fn is_empty(&self) -> bool {
        self.active.is_empty() && self.standby.is_empty() && self.warmup.is_empty()
    }

    fn all(&self) -> impl Iterator<Item = &Task> {
        self.active
            .iter()
            .chain(self.standby.iter())
            .chain(self.warmup.iter())
    }

    fn intersects(&self, other: &TaskSets) -> bool {
        self.active.intersection(&other.active).next().is_some()
            || self.standby.intersection(&other.standby).next().is_some()
            || self.warmup.intersection(&other.warmup).next().is_some()
    }

    /// Whether every task of `self` is in `other` (same roles).
    pub fn within(&self, other: &TaskSets) -> bool {
        self.active.is_subset(&other.active)
            && self.standby.is_subset(&other.standby)
            && self.warmup.is_subset(&other.warmup)
    }
}

/// Kafka's member states (the numbers are the records').
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemberState {
    #[default]
    Stable = 1,
    /// Waiting for the member to report revoked tasks gone.
    UnrevokedTasks = 2,
    /// Reconciled to the epoch, but some target tasks are still held by others.
    UnreleasedTasks = 3,
}

/// A member's current assignment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Current {
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    pub assigned: TaskSets,
    pub pending_revocation: TaskSets,
    /// The assignment epoch at which each active task was given: an offset commit from an
    /// older member epoch is accepted for a task given at or before it.
    pub active_epochs: BTreeMap<Task, i32>,
}

/// What the other members hold, as the unreleased-task rules need it.
#[derive(Debug, Default)]
pub struct Held {
    /// Active tasks (assigned or pending revocation) of every other member.
    pub active_by_others: BTreeSet<Task>,
    /// Tasks other members of this member's process hold in any role.
    pub in_my_process: BTreeSet<Task>,
}

impl Held {
    /// What the others hold, seen from `member` of `process`: `members` gives each
    /// member's (process, assigned, pending revocation).
    pub fn for_member<'a>(
        member: &str,
        process: &str,
        members: impl Iterator<Item = (&'a str, &'a str, &'a TaskSets, &'a TaskSets)>,
    ) -> Held {
        let mut held = Held::default();
        for (id, p, assigned, pending) in members {
            if id == member {
                continue;
            }
            held.active_by_others
                .extend(assigned.active.iter().chain(pending.active.iter()).cloned());
            if p == process {
                held.in_my_process
                    .extend(assigned.all().chain(pending.all()).cloned());
            }
        }
        held
    }
}

/// The member's next assignment, given its target at `target_epoch`, the tasks it reports
/// owning (None: it did not say) and what others hold.
pub fn reconcile(
    current: &Current,
    target: &TaskSets,
    target_epoch: i32,
    owned: Option<&TaskSets>,
    held: &Held,
) -> Current {
    if current.state == MemberState::UnrevokedTasks {
        let gone = owned.is_some_and(|o| !o.intersects(&current.pending_revocation));
        if !gone {
            return current.clone();
        }
    } else if current.state == MemberState::Stable && current.epoch == target_epoch {
        return current.clone();
    }
    let mut next = current.clone();
    next.pending_revocation = TaskSets::default();
    let revoke = TaskSets {
        active: current
            .assigned
            .active
            .difference(&target.active)
            .cloned()
            .collect(),
        standby: current
            .assigned
            .standby
            .difference(&target.standby)
            .cloned()
            .collect(),
        warmup: current
            .assigned
            .warmup
            .difference(&target.warmup)
            .cloned()
            .collect(),
    };
    let keep = TaskSets {
        active: current
            .assigned
            .active
            .intersection(&target.active)
            .cloned()
            .collect(),
        standby: current
            .assigned
            .standby
            .intersection(&target.standby)
            .cloned()
            .collect(),
        warmup: current
            .assigned
            .warmup
            .intersection(&target.warmup)
            .cloned()
            .collect(),
    };
    if !revoke.is_empty() {
        next.state = MemberState::UnrevokedTasks;
        // Revoked tasks keep their epochs while pending: a commit for them from the epoch
        // that had them is still the member's.
        next.active_epochs
            .retain(|t, _| keep.active.contains(t) || revoke.active.contains(t));
        next.assigned = keep;
        next.pending_revocation = revoke;
        return next;
    }
    // Nothing to give up: reach the target epoch, take what is free.
    let mine = |t: &Task| current.assigned.active.contains(t);
    let active_free =
        |t: &&Task| !held.active_by_others.contains(*t) && !held.in_my_process.contains(*t);
    let other_free = |t: &&Task| !held.in_my_process.contains(*t) && !mine(t);
    let add_active: BTreeSet<Task> = target
        .active
        .difference(&keep.active)
        .filter(active_free)
        .cloned()
        .collect();
    let add_standby: BTreeSet<Task> = target
        .standby
        .difference(&keep.standby)
        .filter(other_free)
        .cloned()
        .collect();
    let add_warmup: BTreeSet<Task> = target
        .warmup
        .difference(&keep.warmup)
        .filter(other_free)
        .cloned()
        .collect();
    let held_back = add_active.len() + add_standby.len() + add_warmup.len()
        < target.active.len() + target.standby.len() + target.warmup.len()
            - keep.active.len()
            - keep.standby.len()
            - keep.warmup.len();
    if next.epoch != target_epoch {
        next.previous_epoch = next.epoch;
        next.epoch = target_epoch;
    }
    for t in &add_active {
        next.active_epochs.insert(t.clone(), target_epoch);
    }
    next.active_epochs
        .retain(|t, _| keep.active.contains(t) || add_active.contains(t));
    next.assigned = TaskSets {
        active: keep.active.union(&add_active).cloned().collect(),
        standby: keep.standby.union(&add_standby).cloned().collect(),
        warmup: keep.warmup.union(&add_warmup).cloned().collect(),
    };
    next.state = if held_back {
        MemberState::UnreleasedTasks
    } else {
        MemberState::Stable
    };
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str, p: i32) -> Task {
        (s.to_string(), p)
    }

    fn active(ts: &[Task]) -> TaskSets {
        TaskSets {
            active: ts.iter().cloned().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn revocation_comes_first_and_no_task_is_on_two_members() {
        // A holds 0_0, 0_1 at epoch 2; the new target (epoch 3) gives 0_1 to B.
        let a = Current {
            epoch: 2,
            previous_epoch: 1,
            assigned: active(&[t("0", 0), t("0", 1)]),
            active_epochs: [(t("0", 0), 2), (t("0", 1), 2)].into(),
            ..Default::default()
        };
        let a_target = active(&[t("0", 0)]);
        let b_target = active(&[t("0", 1)]);
        let b = Current::default();

        // B first: 0_1 is still A's, so B reaches epoch 3 without it.
        let held = Held::for_member(
            "b",
            "pb",
            [("a", "pa", &a.assigned, &a.pending_revocation)].into_iter(),
        );
        let b1 = reconcile(&b, &b_target, 3, Some(&TaskSets::default()), &held);
        assert_eq!((b1.epoch, b1.state), (3, MemberState::UnreleasedTasks));
        assert!(b1.assigned.is_empty());

        // A is told to give 0_1 up and keeps epoch 2 until it says it did.
        let a1 = reconcile(&a, &a_target, 3, Some(&a.assigned), &Held::default());
        assert_eq!((a1.epoch, a1.state), (2, MemberState::UnrevokedTasks));
        assert_eq!(a1.assigned, active(&[t("0", 0)]));
        assert_eq!(a1.pending_revocation, active(&[t("0", 1)]));
        let still = reconcile(&a1, &a_target, 3, Some(&a.assigned), &Held::default());
        assert_eq!(still, a1, "still reports 0_1: unchanged");
        let held = Held::for_member(
            "b",
            "pb",
            [("a", "pa", &a1.assigned, &a1.pending_revocation)].into_iter(),
        );
        let b2 = reconcile(&b1, &b_target, 3, Some(&TaskSets::default()), &held);
        assert!(b2.assigned.is_empty(), "pending revocation still blocks B");

        // A reports 0_1 gone: epoch 3, stable; then B gets 0_1 with its epoch.
        let a2 = reconcile(
            &a1,
            &a_target,
            3,
            Some(&active(&[t("0", 0)])),
            &Held::default(),
        );
        assert_eq!(
            (a2.epoch, a2.previous_epoch, a2.state),
            (3, 2, MemberState::Stable)
        );
        assert_eq!(a2.active_epochs, [(t("0", 0), 2)].into());
        let held = Held::for_member(
            "b",
            "pb",
            [("a", "pa", &a2.assigned, &a2.pending_revocation)].into_iter(),
        );
        let b3 = reconcile(&b2, &b_target, 3, Some(&TaskSets::default()), &held);
        assert_eq!((b3.state, &b3.assigned), (MemberState::Stable, &b_target));
        assert_eq!(b3.active_epochs[&t("0", 1)], 3);
    }

    #[test]
    fn a_standby_waits_while_its_process_runs_the_task() {
        let mut other = TaskSets::default();
        other.active.insert(t("1", 0));
        let target = TaskSets {
            standby: [t("1", 0)].into(),
            ..Default::default()
        };
        let same_process = Held::for_member(
            "m2",
            "p",
            [("m1", "p", &other, &TaskSets::default())].into_iter(),
        );
        let r = reconcile(&Current::default(), &target, 1, None, &same_process);
        assert_eq!(r.state, MemberState::UnreleasedTasks);
        let other_process = Held::for_member(
            "m2",
            "q",
            [("m1", "p", &other, &TaskSets::default())].into_iter(),
        );
        let r = reconcile(&Current::default(), &target, 1, None, &other_process);
        assert_eq!((r.state, &r.assigned), (MemberState::Stable, &target));
    }
}
