//! Reading files an operator names (configuration, token, traces): only
//! regular files, only up to a size limit, so that `/dev/zero`, a FIFO or a
//! file that keeps growing fails at once with a clear error instead of
//! hanging or filling memory.

use std::io::Read;
use std::path::Path;

use crate::template_config::escaped;

/// Reads `path` as UTF-8 text if it is a regular file of at most `limit`
/// bytes. A device, pipe or directory is never opened; a file replaced
/// between the check and the open, or growing while read, is refused too.
/// Errors show the path escaped; callers add the setting it came from.
pub fn read_text(path: &Path, limit: u64) -> Result<String, String> {
    let shown = escaped(&path.display().to_string());
    let not_regular = || {
        format!("`{shown}` is not a regular file (a directory, device or pipe cannot be read here)")
    };
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    if meta.len() > limit {
        return Err(format!(
            "`{shown}` is {} bytes, more than the {limit} allowed",
            meta.len()
        ));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    match file.metadata() {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(not_regular()),
        Err(e) => return Err(format!("cannot read `{shown}`: {e}")),
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read `{shown}`: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("`{shown}` is more than the {limit} bytes allowed"));
    }
    String::from_utf8(bytes).map_err(|_| format!("`{shown}` is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_only_when_regular_and_small() {
        let dir = std::env::temp_dir().join(format!("jc-bounded-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let at_limit = dir.join("at-limit");
        std::fs::write(&at_limit, "x".repeat(100)).unwrap();
        assert_eq!(read_text(&at_limit, 100).unwrap().len(), 100);
        let e = read_text(&at_limit, 99).unwrap_err();
        assert!(e.contains("100 bytes, more than the 99 allowed"), "{e}");
        let e = read_text(&dir, 100).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let e = read_text(Path::new("/dev/zero"), 100).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let e = read_text(&dir.join("missing"), 100).unwrap_err();
        assert!(e.contains("cannot read"), "{e}");
        let binary = dir.join("binary");
        std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
        assert!(read_text(&binary, 100).unwrap_err().contains("not UTF-8"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
