//! Offline arena planner (feature `std`): places tensors with known lifetimes in one arena so that
//! no two tensors live at the same time share bytes, and proves how close it came to optimal.
//!
//! The lower bound is exact for the problem as posed: at every op index, every live tensor needs
//! its own bytes, so the arena is at least the largest total (16-byte aligned) size of the
//! tensors live at one op. The planner tries several greedy orderings with first-fit and
//! best-fit placement; when none reaches the bound it runs a bounded depth-first search over
//! placements (each tensor rests at offset 0 or on top of a tensor it conflicts with).

/// Alignment of every planned tensor, in bytes.
pub const ARENA_ALIGN: usize = 16;

/// One buffer to place: byte size and the inclusive op range in which it is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    /// Size in bytes (rounded up to [`ARENA_ALIGN`] by the planner).
    pub size: usize,
    /// First op index at which it is live.
    pub first: usize,
    /// Last op index at which it is live.
    pub last: usize,
}

/// A placement and how it compares with the lower bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Offset of each buffer, in input order.
    pub offsets: Vec<usize>,
    /// Arena bytes the plan needs.
    pub arena_bytes: usize,
    /// Largest total aligned size of simultaneously live buffers.
    pub lower_bound: usize,
    /// Which strategy produced the plan.
    pub method: &'static str,
}

fn aligned(n: usize) -> usize {
    n.div_ceil(ARENA_ALIGN) * ARENA_ALIGN
}

fn conflict(a: &Buffer, b: &Buffer) -> bool {
    a.first <= b.last && b.first <= a.last
}

/// The largest total aligned size of buffers live at the same op index.
pub fn lower_bound(bufs: &[Buffer]) -> usize {
    let horizon = bufs.iter().map(|b| b.last).max().unwrap_or(0);
    (0..=horizon)
        .map(|t| {
            bufs.iter()
                .filter(|b| b.first <= t && t <= b.last)
                .map(|b| aligned(b.size))
                .sum::<usize>()
        })
        .max()
        .unwrap_or(0)
}

/// Places buffers in `order`; `best_fit` picks the smallest gap that fits instead of the lowest.
fn greedy(bufs: &[Buffer], order: &[usize], best_fit: bool) -> (Vec<usize>, usize) {
    let mut offsets = vec![usize::MAX; bufs.len()];
    let mut peak = 0;
    let mut busy: Vec<(usize, usize)> = Vec::new();
    for &i in order {
        let size = aligned(bufs[i].size);
        busy.clear();
        busy.extend(
            order
                .iter()
                .filter(|&&j| offsets[j] != usize::MAX && conflict(&bufs[i], &bufs[j]))
                .map(|&j| (offsets[j], offsets[j] + aligned(bufs[j].size))),
        );
        busy.sort_unstable();
        let mut candidate: Option<(usize, usize)> = None; // (offset, gap size)
        let mut cursor = 0;
        for &(start, end) in &busy {
            if start >= cursor + size {
                let gap = start - cursor;
                let better = match candidate {
                    None => true,
                    Some((_, g)) => best_fit && gap < g,
                };
                if better {
                    candidate = Some((cursor, gap));
                    if !best_fit {
                        break;
                    }
                }
            }
            cursor = cursor.max(end);
        }
        let offset = match candidate {
            Some((o, _)) => o,
            None => cursor,
        };
        offsets[i] = offset;
        peak = peak.max(offset + size);
    }
    (offsets, peak)
}

/// Depth-first search for a placement within `limit` bytes, visiting at most `budget` nodes.
fn search(
    bufs: &[Buffer],
    order: &[usize],
    limit: usize,
    budget: &mut usize,
) -> Option<Vec<usize>> {
    fn go(
        bufs: &[Buffer],
        order: &[usize],
        k: usize,
        limit: usize,
        offsets: &mut Vec<usize>,
        budget: &mut usize,
    ) -> bool {
        if k == order.len() {
            return true;
        }
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        let i = order[k];
        let size = aligned(bufs[i].size);
        let placed: Vec<(usize, usize)> = order[..k]
            .iter()
            .filter(|&&j| conflict(&bufs[i], &bufs[j]))
            .map(|&j| (offsets[j], offsets[j] + aligned(bufs[j].size)))
            .collect();
        let mut candidates: Vec<usize> = core::iter::once(0)
            .chain(placed.iter().map(|&(_, e)| e))
            .filter(|&o| o + size <= limit)
            .filter(|&o| placed.iter().all(|&(s, e)| o + size <= s || o >= e))
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        for o in candidates {
            offsets[i] = o;
            if go(bufs, order, k + 1, limit, offsets, budget) {
                return true;
            }
        }
        offsets[i] = usize::MAX;
        false
    }
    let mut offsets = vec![usize::MAX; bufs.len()];
    go(bufs, order, 0, limit, &mut offsets, budget).then_some(offsets)
}

/// Plans `bufs`. Always returns a valid plan; `arena_bytes == lower_bound` when it found an
/// optimal one.
pub fn plan(bufs: &[Buffer]) -> Plan {
    let lb = lower_bound(bufs);
    let n = bufs.len();
    let by = |key: &dyn Fn(&Buffer) -> (i64, i64, i64)| {
        let mut o: Vec<usize> = (0..n).collect();
        o.sort_by_key(|&i| (key(&bufs[i]), i));
        o
    };
    let len = |b: &Buffer| (b.last - b.first + 1) as i64;
    let orders: [(&'static str, Vec<usize>); 5] = [
        (
            "size-desc",
            by(&|b| (-(aligned(b.size) as i64), b.first as i64, 0)),
        ),
        (
            "first-asc",
            by(&|b| (b.first as i64, -(aligned(b.size) as i64), 0)),
        ),
        (
            "lifetime-desc",
            by(&|b| (-len(b), -(aligned(b.size) as i64), 0)),
        ),
        (
            "area-desc",
            by(&|b| (-(aligned(b.size) as i64) * len(b), 0, 0)),
        ),
        (
            "last-desc",
            by(&|b| (-(b.last as i64), -(aligned(b.size) as i64), 0)),
        ),
    ];
    let mut best: Option<Plan> = None;
    for (name, order) in &orders {
        for best_fit in [false, true] {
            let (offsets, peak) = greedy(bufs, order, best_fit);
            if best.as_ref().is_none_or(|b| peak < b.arena_bytes) {
                best = Some(Plan {
                    offsets,
                    arena_bytes: peak,
                    lower_bound: lb,
                    method: match (*name, best_fit) {
                        ("size-desc", false) => "greedy size-desc first-fit",
                        ("size-desc", true) => "greedy size-desc best-fit",
                        ("first-asc", false) => "greedy first-asc first-fit",
                        ("first-asc", true) => "greedy first-asc best-fit",
                        ("lifetime-desc", false) => "greedy lifetime-desc first-fit",
                        ("lifetime-desc", true) => "greedy lifetime-desc best-fit",
                        ("area-desc", false) => "greedy area-desc first-fit",
                        ("area-desc", true) => "greedy area-desc best-fit",
                        (_, false) => "greedy last-desc first-fit",
                        (_, true) => "greedy last-desc best-fit",
                    },
                });
            }
        }
    }
    let mut best = best.unwrap_or(Plan {
        offsets: Vec::new(),
        arena_bytes: 0,
        lower_bound: lb,
        method: "empty",
    });
    if best.arena_bytes > lb {
        let mut budget = 200_000usize;
        for (_, order) in &orders {
            if let Some(offsets) = search(bufs, order, lb, &mut budget) {
                best = Plan {
                    offsets,
                    arena_bytes: lb,
                    lower_bound: lb,
                    method: "exact search",
                };
                break;
            }
        }
    }
    best
}

/// Whether `offsets` is a valid placement (no two conflicting buffers share bytes).
pub fn is_valid(bufs: &[Buffer], offsets: &[usize]) -> bool {
    (0..bufs.len()).all(|a| {
        (0..a).all(|b| {
            !conflict(&bufs[a], &bufs[b])
                || offsets[a] + bufs[a].size <= offsets[b]
                || offsets[b] + bufs[b].size <= offsets[a]
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn chain_reaches_bound() {
        let sizes = [100, 50, 100, 300, 20, 16];
        let bufs: Vec<Buffer> = sizes
            .iter()
            .enumerate()
            .map(|(i, &s)| Buffer {
                size: s,
                first: i.saturating_sub(1),
                last: i,
            })
            .collect();
        let p = plan(&bufs);
        assert!(is_valid(&bufs, &p.offsets));
        // Live at op 2: buffers 2 and 3 (112 + 304 aligned bytes).
        assert_eq!(p.lower_bound, 416);
        assert_eq!(p.arena_bytes, p.lower_bound);
    }

    #[test]
    fn random_graphs_are_valid_and_never_below_bound() {
        let mut seed = 0x1234_5678_9abc_def1u64;
        let mut optimal = 0;
        for _ in 0..200 {
            let n = 2 + (rng(&mut seed) % 12) as usize;
            let bufs: Vec<Buffer> = (0..n)
                .map(|_| {
                    let first = (rng(&mut seed) % 10) as usize;
                    Buffer {
                        size: 1 + (rng(&mut seed) % 500) as usize,
                        first,
                        last: first + (rng(&mut seed) % 4) as usize,
                    }
                })
                .collect();
            let p = plan(&bufs);
            assert!(is_valid(&bufs, &p.offsets), "{bufs:?} -> {p:?}");
            assert!(p.offsets.iter().all(|o| o % ARENA_ALIGN == 0));
            assert!(p.arena_bytes >= p.lower_bound);
            optimal += (p.arena_bytes == p.lower_bound) as usize;
        }
        // Interval instances are mostly solvable at the bound; a gap is possible but rare.
        assert!(optimal >= 180, "only {optimal}/200 at the bound");
    }

    #[test]
    fn empty_plan() {
        let p = plan(&[]);
        assert_eq!(p.arena_bytes, 0);
        assert_eq!(p.lower_bound, 0);
    }
}
