//! Events stay small whatever the data: a list in an agent's result or a run's answer (groups,
//! recommendations, plan steps, report tables) carries its first `EVENT_LIST_LIMIT` items and
//! counts the rest (`…_omitted`). The lists are ordered so the first are the ones that matter
//! most (groups by spend, recommendations by their group's spend, steps as the plan took
//! them); the full tables are in the report stored with the run
//! (`GET /api/reports/{run_id}.md`).

/// The most items of one list an event carries.
pub const EVENT_LIST_LIMIT: usize = 50;

/// The first `EVENT_LIST_LIMIT` of `items`, and how many are left out.
pub fn capped<T>(items: &[T]) -> (&[T], usize) {
    let shown = items.len().min(EVENT_LIST_LIMIT);
    (items.get(..shown).unwrap_or(items), items.len() - shown)
}

/// For `skip_serializing_if`: nothing was left out.
pub fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_and_counts_the_rest() {
        let items: Vec<u32> = (0..120).collect();
        let (shown, omitted) = capped(&items);
        assert_eq!((shown.len(), omitted), (EVENT_LIST_LIMIT, 70));
        assert_eq!(shown.first(), Some(&0));
        let few = [1, 2];
        assert_eq!(capped(&few), (&few[..], 0));
    }
}
