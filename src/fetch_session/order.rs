//! A fetch session's partitions: found by key at once, read in the session's order, and moved
//! to the back of that order at once. Kafka keeps them in an `ImplicitLinkedHashCollection`
//! for the same reason: every fetch that returns records moves those partitions to the back
//! (so the others get the first share of the next response), and rebuilding the order of a
//! session of thousands of partitions on every fetch would cost more than the fetch.

use indexmap::IndexMap;

use super::{CachedPartition, PartitionKey};

const NIL: usize = usize::MAX;

/// One partition and its neighbours in the session's order (indices into the map).
#[derive(Debug)]
struct Slot {
    cached: CachedPartition,
    prev: usize,
    next: usize,
}

/// The partitions by key, linked in read order. A partition's slot (its index in the map)
/// stays the same until a partition is removed, so a fetch can find its partitions again by
/// slot without hashing their keys.
#[derive(Debug, Default)]
pub(super) struct OrderedPartitions {
    map: IndexMap<PartitionKey, Slot>,
    head: usize,
    tail: usize,
}

impl OrderedPartitions {
    pub(super) fn new() -> OrderedPartitions {
        OrderedPartitions {
            map: IndexMap::new(),
            head: NIL,
            tail: NIL,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub(super) fn get_mut(&mut self, key: &PartitionKey) -> Option<&mut CachedPartition> {
        self.map.get_mut(key).map(|s| &mut s.cached)
    }

    /// The slot of `key`: `hint` when it holds `key`, else looked up.
    pub(super) fn slot_of(&self, hint: usize, key: &PartitionKey) -> Option<usize> {
        match self.map.get_index(hint) {
            Some((k, _)) if k == key => Some(hint),
            _ => self.map.get_index_of(key),
        }
    }

    pub(super) fn at_mut(&mut self, slot: usize) -> Option<&mut CachedPartition> {
        self.map.get_index_mut(slot).map(|(_, s)| &mut s.cached)
    }

    /// Adds `key` at the back of the order (a key already there keeps its place and takes
    /// the new state).
    pub(super) fn push_back(&mut self, key: PartitionKey, cached: CachedPartition) {
        if let Some(existing) = self.map.get_mut(&key) {
            existing.cached = cached;
            return;
        }
        let (slot, _) = self.map.insert_full(
            key,
            Slot {
                cached,
                prev: NIL,
                next: NIL,
            },
        );
        self.link_back(slot);
    }

    /// Removes `key`; false when it was not there.
    pub(super) fn remove(&mut self, key: &PartitionKey) -> bool {
        let Some(slot) = self.map.get_index_of(key) else {
            return false;
        };
        self.unlink(slot);
        let last = self.map.len() - 1;
        self.map.swap_remove_index(slot);
        if slot != last {
            // The last slot's partition now sits in `slot`: its neighbours point there.
            let (prev, next) = {
                let s = &self.map[slot];
                (s.prev, s.next)
            };
            if prev == NIL {
                self.head = slot;
            } else {
                self.map[prev].next = slot;
            }
            if next == NIL {
                self.tail = slot;
            } else {
                self.map[next].prev = slot;
            }
        }
        true
    }

    /// Moves the partition in `slot` to the back of the order.
    pub(super) fn move_to_back(&mut self, slot: usize) {
        if slot >= self.map.len() || self.tail == slot {
            return;
        }
        self.unlink(slot);
        self.link_back(slot);
    }

    /// (slot, key, state) in the session's order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (usize, &PartitionKey, &CachedPartition)> {
        let mut cur = self.head;
        std::iter::from_fn(move || {
            let (key, slot) = self.map.get_index(cur)?;
            let at = cur;
            cur = slot.next;
            Some((at, key, &slot.cached))
        })
    }

    fn unlink(&mut self, slot: usize) {
        let (prev, next) = {
            let s = &self.map[slot];
            (s.prev, s.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.map[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.map[next].prev = prev;
        }
    }

    fn link_back(&mut self, slot: usize) {
        let tail = self.tail;
        {
            let s = &mut self.map[slot];
            s.prev = tail;
            s.next = NIL;
        }
        if tail == NIL {
            self.head = slot;
        } else {
            self.map[tail].next = slot;
        }
        self.tail = slot;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{PartitionRequest, TopicKey};
    use super::*;

    fn key(p: i32) -> PartitionKey {
        PartitionKey {
            topic: TopicKey::Id(uuid::Uuid::from_u128(1)),
            partition: p,
        }
    }

    fn cached(offset: i64) -> CachedPartition {
        CachedPartition::new(PartitionRequest {
            fetch_offset: offset,
            log_start_offset: -1,
            partition_max_bytes: 1,
            current_leader_epoch: -1,
            last_fetched_epoch: -1,
        })
    }

    fn order(o: &OrderedPartitions) -> Vec<i32> {
        o.iter().map(|(_, k, _)| k.partition).collect()
    }

    /// Random adds, removes and moves against a plain vector.
    #[test]
    fn keeps_the_order_a_vector_would() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut o = OrderedPartitions::new();
        let mut model: Vec<i32> = Vec::new();
        for _ in 0..20_000 {
            let p = (next() % 40) as i32;
            match next() % 3 {
                0 => {
                    o.push_back(key(p), cached(p as i64));
                    if !model.contains(&p) {
                        model.push(p);
                    }
                }
                1 => {
                    assert_eq!(o.remove(&key(p)), model.contains(&p));
                    model.retain(|m| *m != p);
                }
                _ => {
                    if let Some(slot) = o.slot_of(usize::MAX, &key(p)) {
                        o.move_to_back(slot);
                        model.retain(|m| *m != p);
                        model.push(p);
                    }
                }
            }
            assert_eq!(order(&o), model);
            assert_eq!(o.len(), model.len());
            for (slot, k, c) in o.iter() {
                assert_eq!(o.slot_of(slot, k), Some(slot));
                assert_eq!(c.request.fetch_offset, k.partition as i64);
            }
        }
    }

    #[test]
    fn a_wrong_hint_falls_back_to_the_key() {
        let mut o = OrderedPartitions::new();
        for p in 0..3 {
            o.push_back(key(p), cached(0));
        }
        assert_eq!(o.slot_of(0, &key(2)), Some(2));
        assert_eq!(o.slot_of(7, &key(1)), Some(1));
        assert_eq!(o.slot_of(0, &key(9)), None);
        assert!(o.at_mut(3).is_none());
    }
}
