//! The Pareto front of accuracy (higher is better) against latency and RAM (lower is better).

/// One point to rank.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Accuracy (maximised).
    pub accuracy: f64,
    /// Latency (minimised).
    pub latency: f64,
    /// RAM (minimised).
    pub ram: f64,
}

impl Point {
    /// Whether `self` dominates `other`: no worse on every objective and better on one.
    pub fn dominates(&self, other: &Point) -> bool {
        let no_worse = self.accuracy >= other.accuracy
            && self.latency <= other.latency
            && self.ram <= other.ram;
        let better =
            self.accuracy > other.accuracy || self.latency < other.latency || self.ram < other.ram;
        no_worse && better
    }
}

/// Indices of the points no other point dominates (in input order). Points with NaN
/// objectives are never on the front.
pub fn front(points: &[Point]) -> Vec<usize> {
    let ok = |p: &Point| !(p.accuracy.is_nan() || p.latency.is_nan() || p.ram.is_nan());
    (0..points.len())
        .filter(|&i| ok(&points[i]) && !points.iter().any(|q| ok(q) && q.dominates(&points[i])))
        .collect()
}

/// Picks among `front` (indices into `points`): the lowest-latency member whose accuracy is
/// within `tolerance` of the front's best, ties to less RAM.
pub fn pick(points: &[Point], front: &[usize], tolerance: f64) -> Option<usize> {
    let best = front
        .iter()
        .filter_map(|&i| points.get(i))
        .map(|p| p.accuracy)
        .fold(f64::NEG_INFINITY, f64::max);
    front
        .iter()
        .copied()
        .filter(|&i| {
            points
                .get(i)
                .is_some_and(|p| p.accuracy >= best - tolerance - 1e-12)
        })
        .min_by(|&a, &b| {
            let (pa, pb) = (points[a], points[b]);
            pa.latency
                .total_cmp(&pb.latency)
                .then(pa.ram.total_cmp(&pb.ram))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(accuracy: f64, latency: f64, ram: f64) -> Point {
        Point {
            accuracy,
            latency,
            ram,
        }
    }

    #[test]
    fn front_of_a_known_set() {
        let pts = [
            p(0.9, 10.0, 5.0),     // 0: best accuracy
            p(0.8, 5.0, 5.0),      // 1: faster
            p(0.8, 6.0, 5.0),      // 2: dominated by 1
            p(0.7, 5.0, 3.0),      // 3: less RAM
            p(0.7, 5.0, 3.0),      // 4: equal to 3 (neither dominates)
            p(0.6, 20.0, 9.0),     // 5: dominated by everything
            p(f64::NAN, 1.0, 1.0), // 6: not rankable
        ];
        assert_eq!(front(&pts), vec![0, 1, 3, 4]);
        assert!(front(&[]).is_empty());
    }

    #[test]
    fn pick_takes_the_fastest_within_tolerance() {
        let pts = [
            p(0.80, 10.0, 100.0),
            p(0.795, 5.0, 200.0),
            p(0.70, 1.0, 50.0),
        ];
        let f = [0, 1, 2];
        assert_eq!(pick(&pts, &f, 0.0), Some(0));
        assert_eq!(pick(&pts, &f, 0.01), Some(1));
        assert_eq!(pick(&pts, &f, 0.2), Some(2));
        assert_eq!(pick(&pts, &[], 0.0), None);
    }

    /// Brute-force property on a grid: every excluded point is dominated by a front point, and
    /// no front point dominates another.
    #[test]
    fn front_is_exactly_the_undominated_set() {
        let mut pts = Vec::new();
        let mut s = 7u64;
        for _ in 0..200 {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let a = ((s >> 33) % 11) as f64 / 10.0;
            let l = ((s >> 20) % 7) as f64;
            let r = ((s >> 45) % 5) as f64;
            pts.push(p(a, l, r));
        }
        let f = front(&pts);
        for i in 0..pts.len() {
            if !f.contains(&i) {
                assert!(f.iter().any(|&j| pts[j].dominates(&pts[i])), "{i}");
            }
        }
        for &i in &f {
            for &j in &f {
                assert!(!pts[i].dominates(&pts[j]));
            }
        }
    }
}
