//! A unified diff of two texts (`diff -u` style, three lines of context), to
//! show what an update would write. Pure.

use std::fmt::Write as _;

/// Lines of context around each change.
const CONTEXT: usize = 3;

/// Above this many cells the middle of two texts is compared as one replaced
/// block instead of line by line (a rewrite never gets near it).
const MAX_CELLS: usize = 4_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Same,
    Del,
    Add,
}

/// The unified diff of `old` and `new`, with `--- a/<path>` and `+++ b/<path>`
/// headers; empty when the texts are equal. A line that lacks its final line
/// break is followed by `\ No newline at end of file`.
pub fn unified(path: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    let ops = script(&a, &b);
    let mut out = String::new();
    let _ = writeln!(out, "--- a/{path}\n+++ b/{path}");
    // Positions (index into ops) of the changes, grouped into hunks.
    let changed: Vec<usize> = (0..ops.len()).filter(|&i| ops[i] != Op::Same).collect();
    let mut i = 0;
    while i < changed.len() {
        let start = changed[i].saturating_sub(CONTEXT);
        let mut end = changed[i];
        let mut j = i;
        while j + 1 < changed.len() && changed[j + 1] <= end + 2 * CONTEXT + 1 {
            j += 1;
            end = changed[j];
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        // Line numbers at `start`.
        let (mut la, mut lb) = (0, 0);
        for op in &ops[..start] {
            match op {
                Op::Same => {
                    la += 1;
                    lb += 1;
                }
                Op::Del => la += 1,
                Op::Add => lb += 1,
            }
        }
        let count_a = ops[start..end].iter().filter(|o| **o != Op::Add).count();
        let count_b = ops[start..end].iter().filter(|o| **o != Op::Del).count();
        let _ = writeln!(out, "@@ -{} +{} @@", range(la, count_a), range(lb, count_b));
        for op in &ops[start..end] {
            let (mark, line) = match op {
                Op::Same => {
                    la += 1;
                    lb += 1;
                    (' ', a[la - 1])
                }
                Op::Del => {
                    la += 1;
                    ('-', a[la - 1])
                }
                Op::Add => {
                    lb += 1;
                    ('+', b[lb - 1])
                }
            };
            out.push(mark);
            out.push_str(line);
            if !line.ends_with('\n') {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
        i = j + 1;
    }
    out
}

/// `start,count` as unified diffs write it (1-based; `start` is the line before
/// an empty range).
fn range(before: usize, count: usize) -> String {
    match count {
        0 => format!("{before},0"),
        1 => format!("{}", before + 1),
        n => format!("{},{n}", before + 1),
    }
}

/// The edit script: common prefix and suffix, and a longest common subsequence
/// of the middle.
fn script(a: &[&str], b: &[&str]) -> Vec<Op> {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[prefix..a.len() - suffix], &b[prefix..b.len() - suffix]);
    let mut ops = vec![Op::Same; prefix];
    if ma.len().saturating_mul(mb.len()) > MAX_CELLS {
        ops.extend(std::iter::repeat_n(Op::Del, ma.len()));
        ops.extend(std::iter::repeat_n(Op::Add, mb.len()));
    } else {
        // lcs[i][j]: the LCS length of ma[i..] and mb[j..].
        let w = mb.len() + 1;
        let mut lcs = vec![0u32; (ma.len() + 1) * w];
        for i in (0..ma.len()).rev() {
            for j in (0..mb.len()).rev() {
                lcs[i * w + j] = if ma[i] == mb[j] {
                    lcs[(i + 1) * w + j + 1] + 1
                } else {
                    lcs[(i + 1) * w + j].max(lcs[i * w + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < ma.len() || j < mb.len() {
            if i < ma.len() && j < mb.len() && ma[i] == mb[j] {
                ops.push(Op::Same);
                i += 1;
                j += 1;
            } else if j < mb.len() && (i == ma.len() || lcs[i * w + j + 1] >= lcs[(i + 1) * w + j])
            {
                ops.push(Op::Add);
                j += 1;
            } else {
                ops.push(Op::Del);
                i += 1;
            }
        }
        // Deletions before additions within each changed block, as diff prints.
        let mut k = prefix;
        while k < ops.len() {
            if ops[k] == Op::Same {
                k += 1;
                continue;
            }
            let end = (k..ops.len())
                .find(|&x| ops[x] == Op::Same)
                .unwrap_or(ops.len());
            ops[k..end].sort_by_key(|o| *o != Op::Del);
            k = end;
        }
    }
    ops.extend(std::iter::repeat_n(Op::Same, suffix));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("f", "a\n", "a\n"), "");
    }

    #[test]
    fn one_changed_line_with_context() {
        let old = "1\n2\n3\n4\nold\n6\n7\n8\n9\n";
        let new = "1\n2\n3\n4\nnew\n6\n7\n8\n9\n";
        assert_eq!(
            unified("s/compose.yaml", old, new),
            "--- a/s/compose.yaml\n+++ b/s/compose.yaml\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-old\n+new\n 6\n 7\n 8\n"
        );
    }

    #[test]
    fn distant_changes_are_separate_hunks_and_close_ones_merge() {
        let lines = |changed: &[(usize, &str)]| -> String {
            (1..=20)
                .map(|i| match changed.iter().find(|(n, _)| *n == i) {
                    Some((_, t)) => format!("{t}\n"),
                    None => format!("{i}\n"),
                })
                .collect()
        };
        let old = lines(&[]);
        let new = lines(&[(2, "two"), (18, "eighteen")]);
        let d = unified("f", &old, &new);
        assert_eq!(d.matches("@@ ").count(), 2, "{d}");
        assert!(d.contains("@@ -1,5 +1,5 @@\n 1\n-2\n+two\n 3\n"), "{d}");
        assert!(d.contains("@@ -15,6 +15,6 @@\n"), "{d}");
        let near = lines(&[(2, "two"), (9, "nine")]);
        assert_eq!(unified("f", &old, &near).matches("@@ ").count(), 1);
    }

    #[test]
    fn missing_final_newline_is_marked() {
        let d = unified("f", "a\nb", "a\nc");
        assert_eq!(
            d,
            "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n"
        );
    }

    #[test]
    fn insertions_and_deletions() {
        let d = unified("f", "a\nb\nc\n", "a\nc\nd\n");
        assert_eq!(d, "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-b\n c\n+d\n");
        let d = unified("f", "", "x\n");
        assert_eq!(d, "--- a/f\n+++ b/f\n@@ -0,0 +1 @@\n+x\n");
    }
}
