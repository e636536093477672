//! Test support: rows of `firmware-examples/BENCH.md`, the file the cost figures
//! ([`crate::cost`]) and the firmware overheads ([`crate::device`]) cite, so that their tests
//! check the numbers against it rather than against copies typed next to them.

/// The file, as committed.
const BENCH: &str = include_str!("../../firmware-examples/BENCH.md");

/// The cells of the table row whose first cell is `label`, in the section whose heading (`#`
/// or `##`) starts with `section`. Panics, naming what is missing, when there is none.
pub(crate) fn row(section: &str, label: &str) -> Vec<String> {
    let start = BENCH
        .lines()
        .position(|l| {
            l.trim_start_matches('#').trim_start().starts_with(section) && l.starts_with('#')
        })
        .unwrap_or_else(|| panic!("BENCH.md has no section {section:?}"));
    BENCH
        .lines()
        .skip(start + 1)
        .take_while(|l| !l.starts_with('#'))
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.first().is_some_and(|c| c == label))
        .unwrap_or_else(|| panic!("BENCH.md section {section:?} has no row {label:?}"))
}

/// Cell `i` of a row as a number.
pub(crate) fn cell(cells: &[String], i: usize) -> f64 {
    cells[i]
        .parse()
        .unwrap_or_else(|_| panic!("cell {i} of {cells:?} is not a number"))
}
