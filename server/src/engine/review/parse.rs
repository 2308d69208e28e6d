//! Parses `git diff --raw --numstat -z --no-abbrev` (what the sandbox answered: untrusted, so
//! every field is checked and anything malformed is an error, never a panic).
use super::{ChangeKind, FileChange};

/// More files than this are not listed (the counts still cover them).
pub const MAX_FILES: usize = 20_000;

#[derive(Debug, PartialEq)]
pub struct Parsed {
    pub files: Vec<FileChange>,
    /// Files past MAX_FILES (left out of `files`).
    pub omitted: usize,
}

const ZERO: &str = "0000000000000000000000000000000000000000";

fn oid(s: &str) -> Option<Option<String>> {
    let ok = (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| (s != ZERO && !s.bytes().all(|b| b == b'0')).then(|| s.to_ascii_lowercase()))
}

fn mode(s: &str) -> Option<u32> {
    (s.len() == 6).then(|| u32::from_str_radix(s, 8).ok()).flatten()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Raw {
    kind: ChangeKind,
    old_path: Option<String>,
    path: String,
    old_blob: Option<String>,
    new_blob: Option<String>,
    old_mode: u32,
    new_mode: u32,
}

/// The fields of a raw entry's header.
struct Header {
    old_mode: u32,
    new_mode: u32,
    old_blob: Option<String>,
    new_blob: Option<String>,
    kind: ChangeKind,
}

/// `:100644 100644 OID OID M` → its fields.
fn raw_header(h: &str) -> Option<Header> {
    let mut f = h.strip_prefix(':')?.split(' ');
    let (om, nm, oo, no, st) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
    if f.next().is_some() {
        return None;
    }
    let kind = match st.as_bytes().first()? {
        b'A' => ChangeKind::Added,
        b'M' => ChangeKind::Modified,
        b'D' => ChangeKind::Deleted,
        b'R' => ChangeKind::Renamed,
        b'C' => ChangeKind::Copied,
        b'T' => ChangeKind::TypeChanged,
        _ => return None,
    };
    Some(Header { old_mode: mode(om)?, new_mode: mode(nm)?, old_blob: oid(oo)?, new_blob: oid(no)?, kind })
}

/// Splits the output into its raw entries and its numstat entries (same order), then pairs them.
pub fn parse(out: &[u8]) -> Result<Parsed, String> {
    let mut tokens = out.split(|b| *b == 0).peekable();
    let mut raws = Vec::new();
    let mut stats: Vec<Option<(u64, u64)>> = Vec::new();
    let bad = |what: &str| format!("unexpected git output ({what})");
    while let Some(tok) = tokens.next() {
        if tok.is_empty() && tokens.peek().is_none() {
            break;
        }
        if tok.first() == Some(&b':') {
            let Header { old_mode, new_mode, old_blob, new_blob, kind } =
                raw_header(std::str::from_utf8(tok).map_err(|_| bad("header"))?).ok_or_else(|| bad("header"))?;
            let first = tokens.next().filter(|p| !p.is_empty()).ok_or_else(|| bad("path"))?;
            let (old_path, path) = if matches!(kind, ChangeKind::Renamed | ChangeKind::Copied) {
                let second = tokens.next().filter(|p| !p.is_empty()).ok_or_else(|| bad("rename target"))?;
                (Some(text(first)), text(second))
            } else {
                (None, text(first))
            };
            raws.push(Raw { kind, old_path, path, old_blob, new_blob, old_mode, new_mode });
            continue;
        }
        // numstat: "ADDED\tDELETED\tPATH", or "ADDED\tDELETED\t" then the two paths of a rename.
        let mut f = tok.splitn(3, |b| *b == b'\t');
        let (a, d, p) = (f.next().ok_or_else(|| bad("stat"))?, f.next().ok_or_else(|| bad("stat"))?, f.next());
        let p = p.ok_or_else(|| bad("stat"))?;
        if p.is_empty() {
            tokens.next().ok_or_else(|| bad("stat source"))?;
            tokens.next().ok_or_else(|| bad("stat target"))?;
        }
        let count = |v: &[u8]| std::str::from_utf8(v).ok().and_then(|s| s.parse::<u64>().ok());
        stats.push(match (a, d) {
            (b"-", b"-") => None,
            _ => Some((count(a).ok_or_else(|| bad("count"))?, count(d).ok_or_else(|| bad("count"))?)),
        });
    }
    if stats.len() != raws.len() {
        return Err(bad("the stat and the file list disagree"));
    }
    let omitted = raws.len().saturating_sub(MAX_FILES);
    let files = raws
        .into_iter()
        .zip(stats)
        .take(MAX_FILES)
        .map(|(r, s)| FileChange {
            binary: s.is_none(),
            added: s.map(|s| s.0),
            deleted: s.map(|s| s.1),
            kind: r.kind,
            path: r.path,
            old_path: r.old_path,
            old_blob: r.old_blob,
            new_blob: r.new_blob,
            old_mode: (r.old_mode != 0).then_some(r.old_mode),
            new_mode: (r.new_mode != 0).then_some(r.new_mode),
        })
        .collect();
    Ok(Parsed { files, omitted })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "d5d0b8b4c4c9e936890870f6799cfbb5ba984470";
    const B: &str = "190423f88f824548a6ada3207938ec0ec11455d5";

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        let z = ZERO;
        for part in [
            format!(":100644 000000 {A} {z} D"),
            "bin.dat".into(),
            format!(":100644 100644 {A} {B} R099"),
            "big.txt".into(),
            "moved dir/new name.txt".into(),
            format!(":000000 100644 {z} {B} A"),
            "new\nline.txt".into(),
            "-\t-\tbin.dat".into(),
            "1\t0\t".into(),
            "big.txt".into(),
            "moved dir/new name.txt".into(),
            "3\t0\tnew\nline.txt".into(),
        ] {
            v.extend_from_slice(part.as_bytes());
            v.push(0);
        }
        v
    }

    #[test]
    fn deletions_renames_binaries_and_odd_paths() {
        let p = parse(&sample()).unwrap();
        assert_eq!(p.omitted, 0);
        let [del, ren, add] = &p.files[..] else { panic!("{:?}", p.files) };
        assert_eq!((del.kind, del.binary, del.added, del.new_blob.as_deref()), (ChangeKind::Deleted, true, None, None));
        assert_eq!(del.old_blob.as_deref(), Some(A));
        assert_eq!(
            (ren.kind, ren.path.as_str(), ren.old_path.as_deref()),
            (ChangeKind::Renamed, "moved dir/new name.txt", Some("big.txt"))
        );
        assert_eq!((ren.added, ren.deleted), (Some(1), Some(0)));
        assert_eq!(
            (add.kind, add.path.as_str(), add.added, add.old_mode),
            (ChangeKind::Added, "new\nline.txt", Some(3), None)
        );
        assert_eq!(add.new_mode, Some(0o100644));
    }

    #[test]
    fn empty_output_is_no_change() {
        assert_eq!(parse(b"").unwrap().files, vec![]);
    }

    #[test]
    fn malformed_output_is_an_error() {
        for bad in
            [&b":100644 100644 xyz abc M\0a\0"[..], b":100644 100644\0a\0", b"1\t2\tonly-stat\0", b"one\ttwo\tx\0"]
        {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let mut unpaired = sample();
        unpaired.extend_from_slice(b"1\t1\textra\0");
        assert!(parse(&unpaired).is_err());
    }
}
