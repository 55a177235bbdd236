//! `Column`: one number per request of a group (latency, prompt or completion tokens), kept
//! to take exact nearest-rank percentiles at the end of a pass. Four bytes a value while every
//! value fits in a `u32` (ingest bounds them at 10⁹), eight once one does not.

use super::aggregate::nearest_rank;

/// One number per request, sorted when read.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Every value so far fits in a `u32`.
    Narrow(Vec<u32>),
    /// Some value did not.
    Wide(Vec<i64>),
}

impl Default for Column {
    fn default() -> Column {
        Column::Narrow(Vec::new())
    }
}

impl Column {
    /// Adds one value.
    pub fn push(&mut self, value: i64) {
        match self {
            Column::Narrow(values) => match u32::try_from(value) {
                Ok(narrow) => values.push(narrow),
                Err(_) => {
                    let mut wide: Vec<i64> = values.iter().map(|v| i64::from(*v)).collect();
                    wide.push(value);
                    *self = Column::Wide(wide);
                }
            },
            Column::Wide(values) => values.push(value),
        }
    }

    /// Sorts the values; call once, before `percentile`.
    pub fn sort(&mut self) {
        match self {
            Column::Narrow(values) => values.sort_unstable(),
            Column::Wide(values) => values.sort_unstable(),
        }
    }

    /// The nearest-rank percentile `p` (0..=100) of the sorted values (0 with none).
    pub fn percentile(&self, p: f64) -> i64 {
        match self {
            Column::Narrow(values) => {
                let rank = nearest_rank_index(values.len(), p);
                rank.and_then(|i| values.get(i))
                    .map_or(0, |v| i64::from(*v))
            }
            Column::Wide(values) => nearest_rank(values, p),
        }
    }
}

/// The index `nearest_rank` reads among `len` sorted values.
fn nearest_rank_index(len: usize, p: f64) -> Option<usize> {
    if len == 0 {
        return None;
    }
    let rank = ((p / 100.0) * len as f64).ceil() as usize;
    Some(rank.saturating_sub(1).min(len - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_and_wide_give_the_same_percentiles() {
        let values: Vec<i64> = (1..=1000).rev().collect();
        let mut sorted = values.clone();
        sorted.sort_unstable();
        let mut narrow = Column::default();
        for v in &values {
            narrow.push(*v);
        }
        let mut wide = Column::Wide(values.clone());
        narrow.sort();
        wide.sort();
        assert!(matches!(narrow, Column::Narrow(_)));
        for p in [0.0, 50.0, 95.0, 99.0, 100.0, 150.0] {
            assert_eq!(narrow.percentile(p), nearest_rank(&sorted, p), "p{p}");
            assert_eq!(wide.percentile(p), nearest_rank(&sorted, p), "p{p}");
        }
        // A value past u32 widens the column and keeps every value.
        narrow.push(i64::from(u32::MAX) + 1);
        narrow.sort();
        assert!(matches!(narrow, Column::Wide(_)));
        assert_eq!(narrow.percentile(100.0), i64::from(u32::MAX) + 1);
        assert_eq!(narrow.percentile(0.0), 1);
        assert_eq!(Column::default().percentile(50.0), 0);
        let mut negative = Column::default();
        negative.push(-5);
        assert_eq!(negative.percentile(50.0), -5);
    }
}
