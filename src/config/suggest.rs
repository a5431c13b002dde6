//! "Did you mean ...?": the nearest known name to a misspelt one.

/// Names too long to be a typo of anything we know are not compared (the
/// distance is quadratic, and a key may be megabytes of junk).
const MAX_LEN: usize = 64;

/// The candidate nearest to `word`, if it is near enough to be a plausible
/// typo: a synonym from `aliases` first, then the smallest edit distance
/// (case-insensitive; a swap of two neighbouring letters counts as one
/// edit), at most a third of the word's length (at least 1). Ties go to the
/// earlier candidate.
pub(crate) fn nearest(
    word: &str,
    candidates: &[&'static str],
    aliases: &[(&str, &'static str)],
) -> Option<&'static str> {
    let lower = word.to_ascii_lowercase();
    if let Some((_, to)) = aliases.iter().find(|(from, _)| *from == lower) {
        return Some(to);
    }
    if word.chars().count() > MAX_LEN {
        return None;
    }
    let limit = (word.chars().count() / 3).max(1);
    let mut best: Option<(usize, &'static str)> = None;
    for &candidate in candidates {
        let d = distance(&lower, &candidate.to_ascii_lowercase());
        let better = match best {
            None => true,
            Some((bd, _)) => d < bd,
        };
        if d <= limit && better {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions
/// and transpositions of adjacent characters each cost 1.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    // Row-major (a.len()+1) x (b.len()+1) table; every index below is
    // within it because i <= a.len() and j <= b.len().
    let mut d = vec![0usize; (a.len() + 1) * width];
    let at = |i: usize, j: usize| i * width + j;
    for i in 0..=a.len() {
        d[at(i, 0)] = i;
    }
    for j in 0..=b.len() {
        d[at(0, j)] = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[at(i - 1, j)] + 1)
                .min(d[at(i, j - 1)] + 1)
                .min(d[at(i - 1, j - 1)] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[at(i - 2, j - 2)] + 1);
            }
            d[at(i, j)] = v;
        }
    }
    d[at(a.len(), b.len())]
}
