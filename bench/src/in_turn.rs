//! The systems a benchmark compares run in turn, starting with a different one in each
//! run: none always meets the machine in the same state (just after the last client
//! count's files were removed, say), and a median of three runs has each one first once.

use anyhow::{anyhow, Result};

/// Runs `jobs` from job `first % N` on, wrapping around, and returns their results in the
/// jobs' own order. Stops at the first error.
pub(crate) fn in_turn<T, const N: usize>(
    first: usize,
    jobs: [&mut dyn FnMut() -> Result<T>; N],
) -> Result<[T; N]> {
    let mut results: [Option<T>; N] = std::array::from_fn(|_| None);
    for k in 0..N {
        let i = (first + k) % N;
        results[i] = Some((jobs[i])()?);
    }
    let results: Vec<T> = results
        .into_iter()
        .collect::<Option<_>>()
        .ok_or_else(|| anyhow!("a job did not run"))?;
    results
        .try_into()
        .map_err(|_| anyhow!("jobs and results differ in number"))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    #[test]
    fn each_run_starts_with_the_next_system_and_results_keep_their_places() {
        for (first, order) in [(0, "abc"), (1, "bca"), (2, "cab"), (4, "bca")] {
            let ran = RefCell::new(String::new());
            let mut a = || -> Result<char> {
                ran.borrow_mut().push('a');
                Ok('A')
            };
            let mut b = || -> Result<char> {
                ran.borrow_mut().push('b');
                Ok('B')
            };
            let mut c = || -> Result<char> {
                ran.borrow_mut().push('c');
                Ok('C')
            };
            let results = in_turn(first, [&mut a, &mut b, &mut c]).expect("all ran");
            assert_eq!(results, ['A', 'B', 'C']);
            assert_eq!(ran.into_inner(), order);
        }
    }

    #[test]
    fn the_first_error_stops_the_rest() {
        let mut ran = 0;
        let mut fails = || -> Result<()> { Err(anyhow!("no bindfs")) };
        let mut counts = || -> Result<()> {
            ran += 1;
            Ok(())
        };
        let err = in_turn(0, [&mut fails, &mut counts]).expect_err("the first job fails");
        assert_eq!(err.to_string(), "no bindfs");
        assert_eq!(ran, 0);
    }
}
