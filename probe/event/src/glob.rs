//! Falco's glob: libsinsp's `glob` operator, `iglob` (on lower-cased text) and the
//! `container.mount.*[pattern]` keys all call `fnmatch(3)` without `FNM_PATHNAME`
//! (`sinsp_utils::glob_match`, `filter_compare.cpp`): `*` matches any run of characters,
//! `/` included; `?` one character; `[…]` a class (`[!…]`/`[^…]` negated, `a-z` ranges,
//! a `]` first is literal, an unclosed `[` is literal); `\` makes the next character
//! literal. The one implementation of the workspace: `falco_learn_rules::glob` (the home
//! of Falco's glob syntax for rules and what emits them) re-exports it, and it lives here
//! because field extraction (`container.mount.dest[/data*]`) needs it too.

/// Does `text` match `pattern` (fnmatch without flags)?
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    glob(&p, text)
}

fn glob(p: &[char], t: &str) -> bool {
    let t: Vec<char> = t.chars().collect();
    glob_chars(p, &t)
}

/// [`glob_chars`] with the text as a string (a pattern compiled once into chars).
pub fn glob_chars_str(p: &[char], t: &str) -> bool {
    glob(p, t)
}

/// fnmatch-style glob without FNM_PATHNAME: `*` (also across `/`), `?`, `[…]`, `[!…]`.
pub fn glob_chars(p: &[char], t: &[char]) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut back: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = if pi < p.len() {
            match p[pi] {
                '*' => {
                    back = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' => Some(pi + 1),
                '[' => class(p, pi, t[ti]),
                '\\' if pi + 1 < p.len() => (p[pi + 1] == t[ti]).then_some(pi + 2),
                c => (c == t[ti]).then_some(pi + 1),
            }
        } else {
            None
        };
        match step {
            Some(np) => {
                pi = np;
                ti += 1;
            }
            None => match back {
                Some((bp, bt)) => {
                    pi = bp + 1;
                    ti = bt + 1;
                    back = Some((bp, bt + 1));
                }
                None => return false,
            },
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Match a `[…]` class at `p[start]`; returns the index after it on a match.
fn class(p: &[char], start: usize, c: char) -> Option<usize> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() && (p[i] != ']' || first) {
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    if i >= p.len() {
        // Unclosed: treat '[' literally.
        return (c == '[').then_some(start + 1);
    }
    (matched != negate).then_some(i + 1)
}
