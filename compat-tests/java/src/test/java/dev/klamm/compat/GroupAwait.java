package dev.klamm.compat;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Supplier;

/** Waiting for a group to settle: every partition owned by exactly one member, with given sizes. */
final class GroupAwait {
    private GroupAwait() {
    }

    /** True if the owned sets are disjoint, cover 0..partitions-1 and have these sizes (any order). */
    static boolean balanced(int partitions, List<Set<Integer>> owned, int... sizes) {
        Set<Integer> union = new HashSet<>();
        int total = 0;
        List<Integer> have = new ArrayList<>();
        for (Set<Integer> o : owned) {
            union.addAll(o);
            total += o.size();
            have.add(o.size());
        }
        List<Integer> want = new ArrayList<>();
        for (int s : sizes) {
            want.add(s);
        }
        have.sort(null);
        want.sort(null);
        return total == partitions && union.size() == partitions && have.equals(want)
                && union.stream().allMatch(p -> p >= 0 && p < partitions);
    }

    @SafeVarargs
    static void await(String what, Duration timeout, int partitions, int[] sizes, Supplier<Set<Integer>>... members) {
        Kit.waitUntil(what, timeout, () -> {
            List<Set<Integer>> owned = new ArrayList<>();
            for (Supplier<Set<Integer>> m : members) {
                owned.add(m.get());
            }
            return balanced(partitions, owned, sizes);
        }, () -> {
            List<Set<Integer>> owned = new ArrayList<>();
            for (Supplier<Set<Integer>> m : members) {
                owned.add(m.get());
            }
            return "owned now: " + owned;
        });
    }

    static boolean contiguous(Set<Integer> ps) {
        if (ps.isEmpty()) {
            return true;
        }
        int min = ps.stream().min(Integer::compare).get();
        int max = ps.stream().max(Integer::compare).get();
        return max - min + 1 == ps.size();
    }
}
