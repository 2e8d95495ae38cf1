//! Markdown helpers shared by every module that writes a report section (the run report,
//! verification, containment, replay): a leaf, so those modules need not import each other.

/// `text` made safe for one cell of a Markdown table: `|` escaped, line breaks as spaces.
pub fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cell_keeps_one_row() {
        assert_eq!(super::cell("a|b\nc"), "a\\|b c");
    }
}
