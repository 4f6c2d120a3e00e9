//! Reading files an operator names (configuration, token, traces): only
//! regular files, only up to a size limit, so that `/dev/zero`, a FIFO or a
//! file that keeps growing fails at once with a clear error instead of
//! hanging or filling memory.

use std::io::Read;
use std::path::Path;

/// Reads `path` as UTF-8 text if it is a regular file of at most `limit`
/// bytes. Errors name `what` (the setting or option it came from) and the
/// path, and say which rule was broken.
pub fn read_text(path: &Path, limit: u64, what: &str) -> Result<String, String> {
    let shown = path.display();
    let meta =
        std::fs::metadata(path).map_err(|e| format!("{what}: cannot read `{shown}`: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "{what}: `{shown}` is not a regular file (devices, FIFOs and directories are refused)"
        ));
    }
    if meta.len() > limit {
        return Err(format!(
            "{what}: `{shown}` is {} bytes, more than the limit of {limit}",
            meta.len()
        ));
    }
    let file =
        std::fs::File::open(path).map_err(|e| format!("{what}: cannot read `{shown}`: {e}"))?;
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{what}: cannot read `{shown}`: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "{what}: `{shown}` grew past the limit of {limit} bytes while it was read"
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "{what}: `{shown}` is not UTF-8 text (byte {})",
            e.utf8_error().valid_up_to()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_oversized_files_are_refused_with_the_setting_named() {
        let e = read_text(Path::new("/dev/zero"), 1024, "jenkins.token_file").unwrap_err();
        assert!(
            e.contains("jenkins.token_file") && e.contains("not a regular file"),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("jc-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let big = dir.join("big");
        std::fs::write(&big, vec![b'a'; 2048]).unwrap();
        let e = read_text(&big, 1024, "--trace").unwrap_err();
        assert!(
            e.contains("--trace") && e.contains("more than the limit of 1024"),
            "{e}"
        );
        assert_eq!(read_text(&big, 4096, "--trace").unwrap().len(), 2048);
        let e = read_text(&dir, 1024, "--trace").unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        std::fs::write(&big, [0xff, 0xfe]).unwrap();
        assert!(read_text(&big, 1024, "x")
            .unwrap_err()
            .contains("not UTF-8"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
