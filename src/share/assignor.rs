//! Kafka's `simple` share-group assignor (KIP-932). Unlike the consumer assignors a
//! partition may go to several members: share groups hand records out one by one, so
//! with more members than partitions the partitions are shared instead of some members
//! idling. Every subscribed partition is assigned; member counts differ by at most one;
//! a member keeps what it had while that stays within its share.
//!
//! Pure functions over plain maps, so the rules are unit-tested without a broker.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

/// A partition by topic id, as the share protocol names them.
pub type Tp = (Uuid, i32);

/// The assignor's name, as ShareGroupDescribe reports it (`SimpleAssignor.SIMPLE_ASSIGNOR_NAME`).
pub const SIMPLE_ASSIGNOR_NAME: &str = "simple";

/// Computes the target assignment. `subs` is each member's subscribed topic names,
/// `topics` the subscribed topics that exist (name -> id, partition count), `previous`
/// the last target (for stickiness).
///
/// With every member subscribed to the same topics the whole set of partitions is shared
/// out at once (Kafka's homogeneous algorithm); otherwise each topic is shared out among
/// its own subscribers (the heterogeneous case, whose exact Kafka rules are unverified).
pub fn assign(
    subs: &BTreeMap<String, BTreeSet<String>>,
    topics: &BTreeMap<String, (Uuid, i32)>,
    previous: &HashMap<String, BTreeSet<Tp>>,
) -> HashMap<String, BTreeSet<Tp>> {
    let mut out: HashMap<String, BTreeSet<Tp>> =
        subs.keys().map(|m| (m.clone(), BTreeSet::new())).collect();
    let homogeneous = subs.values().collect::<BTreeSet<_>>().len() <= 1;
    if homogeneous {
        let members: Vec<&String> = subs.keys().collect();
        let parts: Vec<Tp> = subs
            .values()
            .next()
            .into_iter()
            .flatten()
            .flat_map(|t| partitions_of(topics, t))
            .collect();
        share_out(&members, &parts, previous, &mut out);
    } else {
        for topic in topics.keys() {
            let members: Vec<&String> = subs
                .iter()
                .filter(|(_, ts)| ts.contains(topic))
                .map(|(m, _)| m)
                .collect();
            share_out(&members, &partitions_of(topics, topic), previous, &mut out);
        }
    }
    out
}

fn partitions_of(topics: &BTreeMap<String, (Uuid, i32)>, topic: &str) -> Vec<Tp> {
    topics
        .get(topic)
        .map(|(id, n)| (0..*n).map(|p| (*id, p)).collect())
        .unwrap_or_default()
}

/// Shares `parts` out among `members`, adding to `out`. Each partition wants
/// `ceil(M/P)` members; the resulting slots are split so member counts differ by at most
/// one. Members first keep previous partitions within both limits, then the least-shared
/// partitions fill the remaining room, so every partition gets at least one member.
fn share_out(
    members: &[&String],
    parts: &[Tp],
    previous: &HashMap<String, BTreeSet<Tp>>,
    out: &mut HashMap<String, BTreeSet<Tp>>,
) {
    let (m, p) = (members.len(), parts.len());
    if m == 0 || p == 0 {
        return;
    }
    let sharing = m.div_ceil(p);
    let slots = sharing * p;
    // Member i's quota: ceil(slots*(i+1)/M) - ceil(slots*i/M), so quotas differ by at most 1.
    // The members that held the most before get the larger quotas, which keeps more of
    // what they had.
    let mut order: Vec<&String> = members.to_vec();
    let held = |mm: &String| {
        previous
            .get(mm)
            .map_or(0, |s| parts.iter().filter(|tp| s.contains(tp)).count())
    };
    order.sort_by_key(|mm| (std::cmp::Reverse(held(mm)), (*mm).clone()));
    let mut quota: HashMap<&String, usize> = HashMap::new();
    for (i, mm) in order.iter().enumerate() {
        let q = (slots * (i + 1)).div_ceil(m) - (slots * i).div_ceil(m);
        quota.insert(*mm, q);
    }
    let mut count: BTreeMap<Tp, usize> = parts.iter().map(|tp| (*tp, 0)).collect();
    let mut mine: HashMap<&String, BTreeSet<Tp>> = HashMap::new();
    // Stickiness: keep what each member had, within its quota and the partition's sharing.
    for mm in &order {
        let set = mine.entry(*mm).or_default();
        for tp in previous.get(*mm).into_iter().flatten() {
            let Some(c) = count.get_mut(tp) else { continue };
            if *c < sharing && set.len() < quota[mm] {
                *c += 1;
                set.insert(*tp);
            }
        }
    }
    // Balance: fill each member's room with the least-shared partitions it lacks.
    for mm in &order {
        let set = mine.entry(*mm).or_default();
        while set.len() < quota[mm] {
            let Some(tp) = count
                .iter()
                .filter(|(tp, _)| !set.contains(*tp))
                .min_by_key(|(tp, c)| (**c, **tp))
                .map(|(tp, _)| *tp)
            else {
                break;
            };
            *count.get_mut(&tp).expect("counted") += 1;
            set.insert(tp);
        }
    }
    for (mm, set) in mine {
        out.entry(mm.clone()).or_default().extend(set);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(spec: &[(&str, i32)]) -> BTreeMap<String, (Uuid, i32)> {
        spec.iter()
            .map(|(n, p)| (n.to_string(), (Uuid::new_v4(), *p)))
            .collect()
    }

    fn subs(members: &[&str], t: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
        members
            .iter()
            .map(|m| (m.to_string(), t.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn sizes(a: &HashMap<String, BTreeSet<Tp>>) -> Vec<usize> {
        let mut v: Vec<usize> = a.values().map(|s| s.len()).collect();
        v.sort();
        v
    }

    fn covered(a: &HashMap<String, BTreeSet<Tp>>) -> usize {
        a.values().flatten().collect::<BTreeSet<_>>().len()
    }

    #[test]
    fn one_partition_is_shared_by_every_member() {
        let t = topics(&[("a", 1)]);
        let a = assign(&subs(&["m1", "m2", "m3"], &["a"]), &t, &HashMap::new());
        assert_eq!(sizes(&a), vec![1, 1, 1]);
        assert_eq!(covered(&a), 1);
    }

    #[test]
    fn more_partitions_than_members_are_split_evenly() {
        let t = topics(&[("a", 4)]);
        let a = assign(&subs(&["m1", "m2"], &["a"]), &t, &HashMap::new());
        assert_eq!(sizes(&a), vec![2, 2]);
        assert_eq!(covered(&a), 4);
        assert!(a["m1"].is_disjoint(&a["m2"]), "no sharing is needed");
        let t = topics(&[("a", 5), ("b", 2)]);
        let a = assign(&subs(&["x", "y", "z"], &["a", "b"]), &t, &HashMap::new());
        assert_eq!(sizes(&a), vec![2, 2, 3]);
        assert_eq!(covered(&a), 7);
    }

    #[test]
    fn fewer_partitions_than_members_are_all_covered_and_balanced() {
        // 2 partitions, 3 members: each partition wants 2 members, 4 slots as 2+1+1.
        let t = topics(&[("a", 2)]);
        let a = assign(&subs(&["m1", "m2", "m3"], &["a"]), &t, &HashMap::new());
        assert_eq!(sizes(&a), vec![1, 1, 2]);
        assert_eq!(covered(&a), 2);
    }

    #[test]
    fn members_keep_what_they_had() {
        let t = topics(&[("a", 6)]);
        let two = assign(&subs(&["m1", "m2"], &["a"]), &t, &HashMap::new());
        let three = assign(&subs(&["m1", "m2", "m3"], &["a"]), &t, &two);
        assert_eq!(sizes(&three), vec![2, 2, 2]);
        assert_eq!(covered(&three), 6);
        assert!(three["m1"].is_subset(&two["m1"]));
        assert!(three["m2"].is_subset(&two["m2"]));
        // m2 leaves: m1 and m3 keep everything and take m2's partitions.
        let back = assign(&subs(&["m1", "m3"], &["a"]), &t, &three);
        assert_eq!(sizes(&back), vec![3, 3]);
        assert!(three["m1"].is_subset(&back["m1"]));
        assert!(three["m3"].is_subset(&back["m3"]));
    }

    #[test]
    fn dropped_topics_leave_and_each_topic_goes_to_its_subscribers() {
        let t = topics(&[("a", 2), ("b", 1)]);
        let mut s = subs(&["m1"], &["a"]);
        s.extend(subs(&["m2"], &["a", "b"]));
        let a = assign(&s, &t, &HashMap::new());
        let b_id = t["b"].0;
        assert!(a["m2"].contains(&(b_id, 0)));
        assert!(a["m1"].iter().all(|tp| tp.0 != b_id));
        assert_eq!(covered(&a), 3);
        // m2 unsubscribes from b: nobody keeps it.
        let a2 = assign(&subs(&["m1", "m2"], &["a"]), &t, &a);
        assert!(a2.values().flatten().all(|tp| tp.0 != b_id));
        assert_eq!(sizes(&a2), vec![1, 1]);
    }
}
