//! The "sticky" task assignor of streams groups (Kafka 4.4's `StickyTaskAssignor`): active
//! tasks stay with their previous owners up to an even share, then go to previous standby
//! owners, then to the least-loaded process and member; standby replicas go to processes
//! that do not run the task already. Ties break on (process id, member id), so the same
//! group gives the same assignment on every broker.

use std::collections::{BTreeMap, BTreeSet};

/// A task: (subtopology id, partition).
pub type Task = (String, i32);

/// What the assignor knows of a member.
#[derive(Debug, Clone, Default)]
pub struct MemberSpec {
    pub member_id: String,
    /// The KafkaStreams instance: its stream threads are members of one process.
    pub process_id: String,
    pub active: BTreeSet<Task>,
    pub standby: BTreeSet<Task>,
}

/// A member's tasks in the target assignment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    pub active: BTreeSet<Task>,
    pub standby: BTreeSet<Task>,
}

struct State<'a> {
    members: Vec<&'a MemberSpec>,
    out: Vec<Assignment>,
}

impl State<'_> {
    fn process_members(&self, process: &str) -> impl Iterator<Item = usize> + '_ {
        let process = process.to_string();
        (0..self.members.len()).filter(move |i| self.members[*i].process_id == process)
    }

    /// A process's load: its members' tasks (`count` picks which) per member.
    fn process_load(&self, process: &str, count: impl Fn(&Assignment) -> usize) -> f64 {
        let (tasks, n) = self
            .process_members(process)
            .fold((0, 0), |(t, n), i| (t + count(&self.out[i]), n + 1));
        tasks as f64 / n.max(1) as f64
    }

    fn process_holds(&self, process: &str, task: &Task) -> bool {
        self.process_members(process)
            .any(|i| self.out[i].active.contains(task) || self.out[i].standby.contains(task))
    }

    fn processes(&self) -> BTreeSet<String> {
        self.members.iter().map(|m| m.process_id.clone()).collect()
    }

    /// The least-loaded member of the least-loaded process among `candidates`.
    fn least_loaded(
        &self,
        candidates: impl Iterator<Item = usize>,
        count: impl Fn(&Assignment) -> usize + Copy,
    ) -> Option<usize> {
        candidates.min_by(|a, b| {
            let (ma, mb) = (self.members[*a], self.members[*b]);
            let la = self.process_load(&ma.process_id, count);
            let lb = self.process_load(&mb.process_id, count);
            la.total_cmp(&lb)
                .then(count(&self.out[*a]).cmp(&count(&self.out[*b])))
                .then(ma.process_id.cmp(&mb.process_id))
                .then(ma.member_id.cmp(&mb.member_id))
        })
    }
}

/// An even share that is recomputed as members fill up: with 7 tasks and 3 members the
/// shares are 3, 2, 2 rather than 3, 3, 1.
struct Quota {
    tasks: usize,
    members: usize,
    full: BTreeSet<usize>,
}

impl Quota {
    fn new(tasks: usize, members: usize) -> Quota {
        Quota {
            tasks,
            members,
            full: BTreeSet::new(),
        }
    }

    fn current(&self) -> usize {
        let members = self.members.saturating_sub(self.full.len()).max(1);
        self.tasks.div_ceil(members)
    }

    fn has_room(&self, member: usize, load: usize) -> bool {
        !self.full.contains(&member) && load < self.current()
    }

    /// Counts a task given to `member`, which now has `load`.
    fn given(&mut self, member: usize, load: usize) {
        if load >= self.current() && self.full.insert(member) {
            self.tasks = self.tasks.saturating_sub(load);
        }
    }
}

/// The target assignment of `members` (sorted by member id on input or not: the result is
/// keyed by member id) for `tasks` (tasks per subtopology); `stateful` subtopologies get
/// `standbys` standby replicas on other processes where there is room.
pub fn assign(
    members: &[MemberSpec],
    tasks: &BTreeMap<String, i32>,
    stateful: &BTreeSet<String>,
    standbys: u32,
) -> BTreeMap<String, Assignment> {
    let mut sorted: Vec<&MemberSpec> = members.iter().collect();
    sorted.sort_by(|a, b| (&a.process_id, &a.member_id).cmp(&(&b.process_id, &b.member_id)));
    let mut st = State {
        out: vec![Assignment::default(); sorted.len()],
        members: sorted,
    };
    if st.members.is_empty() {
        return BTreeMap::new();
    }
    let all: Vec<Task> = tasks
        .iter()
        .flat_map(|(s, n)| (0..*n).map(move |p| (s.clone(), p)))
        .collect();
    let active_count = |a: &Assignment| a.active.len();
    let mut quota = Quota::new(all.len(), st.members.len());

    // 1. Previous active owners keep their tasks, up to the share.
    let mut by_partition = all.clone();
    by_partition.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    let mut left = Vec::new();
    for task in by_partition {
        let owner = (0..st.members.len()).find(|i| st.members[*i].active.contains(&task));
        match owner {
            Some(i) if quota.has_room(i, st.out[i].active.len()) => {
                st.out[i].active.insert(task);
                quota.given(i, st.out[i].active.len());
            }
            _ => left.push(task),
        }
    }
    // 2. Then previous standby owners (warm state).
    let mut rest = Vec::new();
    for task in left {
        let candidates: Vec<usize> = (0..st.members.len())
            .filter(|i| st.members[*i].standby.contains(&task))
            .filter(|i| quota.has_room(*i, st.out[*i].active.len()))
            .collect();
        match st.least_loaded(candidates.into_iter(), active_count) {
            Some(i) => {
                st.out[i].active.insert(task);
                quota.given(i, st.out[i].active.len());
            }
            None => rest.push(task),
        }
    }
    // 3. The rest to the least-loaded process and member.
    rest.sort();
    for task in rest {
        if let Some(i) = st.least_loaded(0..st.members.len(), active_count) {
            st.out[i].active.insert(task);
        }
    }

    // Standby replicas of stateful tasks, never on a process that has the task.
    if standbys > 0 {
        let total_count = |a: &Assignment| a.active.len() + a.standby.len();
        let mut replicas: Vec<Task> = all
            .iter()
            .filter(|(s, _)| stateful.contains(s))
            .cloned()
            .collect();
        replicas.sort_by(|a, b| (b.1, &b.0).cmp(&(a.1, &a.0)));
        let total = all.len() + replicas.len() * standbys as usize;
        let quota = total.div_ceil(st.members.len());
        let mut queued = Vec::new();
        for _ in 0..standbys {
            for task in &replicas {
                let prev_active = (0..st.members.len()).find(|i| {
                    st.members[*i].active.contains(task)
                        && !st.process_holds(&st.members[*i].process_id, task)
                        && total_count(&st.out[*i]) < quota
                });
                let chosen = prev_active.or_else(|| {
                    let c: Vec<usize> = (0..st.members.len())
                        .filter(|i| st.members[*i].standby.contains(task))
                        .filter(|i| !st.process_holds(&st.members[*i].process_id, task))
                        .filter(|i| total_count(&st.out[*i]) < quota)
                        .collect();
                    st.least_loaded(c.into_iter(), total_count)
                });
                match chosen {
                    Some(i) => {
                        st.out[i].standby.insert(task.clone());
                    }
                    None => queued.push(task.clone()),
                }
            }
        }
        queued.sort_by(|a, b| b.cmp(a));
        for task in queued {
            let processes: Vec<String> = st
                .processes()
                .into_iter()
                .filter(|p| !st.process_holds(p, &task))
                .collect();
            let candidates: Vec<usize> = (0..st.members.len())
                .filter(|i| processes.contains(&st.members[*i].process_id))
                .collect();
            match st.least_loaded(candidates.into_iter(), total_count) {
                Some(i) => {
                    st.out[i].standby.insert(task);
                }
                None => {
                    tracing::debug!(subtopology = %task.0, partition = task.1, "not enough processes for a standby replica");
                }
            }
        }
    }

    st.members
        .iter()
        .zip(st.out)
        .map(|(m, a)| (m.member_id.clone(), a))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, process: &str, active: &[(&str, i32)]) -> MemberSpec {
        MemberSpec {
            member_id: id.into(),
            process_id: process.into(),
            active: active.iter().map(|(s, p)| (s.to_string(), *p)).collect(),
            standby: BTreeSet::new(),
        }
    }

    fn tasks(a: &Assignment) -> Vec<(&str, i32)> {
        a.active.iter().map(|(s, p)| (s.as_str(), *p)).collect()
    }

    fn word_count() -> BTreeMap<String, i32> {
        BTreeMap::from([("0".into(), 3), ("1".into(), 3)])
    }

    /// Kafka 4.4, observed: A owned all 6 tasks, B joins; A keeps 0_0, 1_0, 0_1.
    #[test]
    fn a_new_member_gets_the_tasks_past_the_owners_share() {
        let all: Vec<(&str, i32)> =
            vec![("0", 0), ("0", 1), ("0", 2), ("1", 0), ("1", 1), ("1", 2)];
        let a = member("a", "pa", &all);
        let b = member("b", "pb", &[]);
        let out = assign(&[b, a], &word_count(), &BTreeSet::new(), 0);
        assert_eq!(tasks(&out["a"]), [("0", 0), ("0", 1), ("1", 0)]);
        assert_eq!(tasks(&out["b"]), [("0", 2), ("1", 1), ("1", 2)]);
    }

    #[test]
    fn shares_are_even_and_processes_balanced() {
        let seven = BTreeMap::from([("0".into(), 7)]);
        let members = [
            member("a", "p1", &[]),
            member("b", "p2", &[]),
            member("c", "p3", &[]),
        ];
        let out = assign(&members, &seven, &BTreeSet::new(), 0);
        let mut sizes: Vec<usize> = out.values().map(|a| a.active.len()).collect();
        sizes.sort();
        assert_eq!(sizes, [2, 2, 3]);
        let owned: BTreeSet<&Task> = out.values().flat_map(|a| a.active.iter()).collect();
        assert_eq!(owned.len(), 7, "every task once");
        // Two threads of one process and one of another: the lone thread's process gets
        // as much as the pair together (load per member evens out).
        let members = [
            member("a1", "p1", &[]),
            member("a2", "p1", &[]),
            member("b", "p2", &[]),
        ];
        let out = assign(&members, &word_count(), &BTreeSet::new(), 0);
        assert_eq!(
            out["a1"].active.len() + out["a2"].active.len() + out["b"].active.len(),
            6
        );
        assert!(out.values().all(|a| a.active.len() == 2), "{out:?}");
    }

    #[test]
    fn standbys_go_to_other_processes_only() {
        let stateful = BTreeSet::from(["1".to_string()]);
        let members = [member("a", "p1", &[]), member("b", "p2", &[])];
        let out = assign(&members, &word_count(), &stateful, 1);
        for p in 0..3 {
            let task = ("1".to_string(), p);
            let active: Vec<&String> = out
                .iter()
                .filter(|(_, a)| a.active.contains(&task))
                .map(|(m, _)| m)
                .collect();
            let standby: Vec<&String> = out
                .iter()
                .filter(|(_, a)| a.standby.contains(&task))
                .map(|(m, _)| m)
                .collect();
            assert_eq!((active.len(), standby.len()), (1, 1), "{task:?}: {out:?}");
            assert_ne!(active, standby);
        }
        assert!(out
            .values()
            .all(|a| a.standby.iter().all(|(s, _)| s == "1")));
        // One process: no room for a standby anywhere.
        let one = [member("a", "p1", &[]), member("b", "p1", &[])];
        let out = assign(&one, &word_count(), &stateful, 1);
        assert!(out.values().all(|a| a.standby.is_empty()));
    }
}
