//! The event journal: what Magos told its owner, one JSON document a line, in
//! the state folder, for `magos history`. It never grows past twice its bound:
//! when `events.jsonl` would pass it, it is renamed over `events.1.jsonl` (one
//! atomic rename) and a new one starts. Beside it, `notify-state.json` keeps
//! the states already sent ([`Dedupe`]) across restarts, written atomically.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::core::event::Event;
use crate::core::notify::Dedupe;

/// The current journal file.
pub const CURRENT: &str = "events.jsonl";
/// The previous one.
pub const PREVIOUS: &str = "events.1.jsonl";
/// The de-duplication record.
pub const STATE: &str = "notify-state.json";
/// The default bound of one journal file.
pub const MAX_BYTES: u64 = 1024 * 1024;

/// The journal of a state folder.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
    max_bytes: u64,
}

impl Journal {
    /// The journal in `dir` (the state folder), each file at most `max_bytes`.
    pub fn new(dir: &Path, max_bytes: u64) -> Self {
        Self {
            dir: dir.to_owned(),
            max_bytes: max_bytes.max(1),
        }
    }

    /// The folder it lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `event` as one line, rotating first when the line would take
    /// the current file past its bound.
    pub fn append(&self, event: &Event) -> io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(io::Error::other)?;
        line.push(b'\n');
        std::fs::create_dir_all(&self.dir)?;
        let current = self.dir.join(CURRENT);
        let size = match std::fs::metadata(&current) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        if size > 0 && size + line.len() as u64 > self.max_bytes {
            std::fs::rename(&current, self.dir.join(PREVIOUS))?;
        } else if size > 0 && !ends_with_newline(&current)? {
            // A line cut short by a crash: the next one starts on its own.
            line.insert(0, b'\n');
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&current)?;
        // One write: a reader sees the whole line or none of it.
        file.write_all(&line)?;
        Ok(())
    }

    /// Every event kept, oldest first. A line that is not an event (cut short
    /// by a crash) is skipped.
    pub fn read(&self) -> io::Result<Vec<Event>> {
        let mut events = Vec::new();
        for name in [PREVIOUS, CURRENT] {
            let file = match File::open(self.dir.join(name)) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for line in BufReader::new(file).lines() {
                if let Ok(event) = serde_json::from_str::<Event>(&line?) {
                    events.push(event);
                }
            }
        }
        Ok(events)
    }

    /// The de-duplication record; empty when there is none (or it is unreadable).
    pub fn load_dedupe(&self) -> Dedupe {
        std::fs::read(self.dir.join(STATE))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Writes the de-duplication record atomically (a temporary file renamed
    /// over it).
    pub fn save_dedupe(&self, dedupe: &Dedupe) -> io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        serde_json::to_writer(&mut tmp, dedupe).map_err(io::Error::other)?;
        tmp.as_file().sync_all()?;
        tmp.persist(self.dir.join(STATE)).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Whether the file's last byte is a newline.
fn ends_with_newline(path: &Path) -> io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::EventKind;

    fn event(i: i64) -> Event {
        Event::new(EventKind::Drift, i)
            .stack("web")
            .service(format!("s{i}"))
            .reason("missing")
    }

    #[test]
    fn the_journal_keeps_events_in_order_within_twice_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let line = serde_json::to_vec(&event(100)).unwrap().len() as u64 + 1;
        let journal = Journal::new(dir.path(), line * 10);
        for i in 100..200 {
            journal.append(&event(i)).unwrap();
            let total: u64 = [CURRENT, PREVIOUS]
                .iter()
                .filter_map(|n| std::fs::metadata(dir.path().join(n)).ok())
                .map(|m| m.len())
                .sum();
            assert!(total <= 2 * line * 10, "{total} bytes after {i}");
        }
        let kept = journal.read().unwrap();
        let ats: Vec<i64> = kept.iter().map(|e| e.at).collect();
        // The newest ten or more, oldest first, none lost inside that window.
        assert!(kept.len() >= 10 && kept.len() <= 20, "{ats:?}");
        assert_eq!(*ats.last().unwrap(), 199);
        assert!(ats.windows(2).all(|w| w[1] == w[0] + 1), "{ats:?}");
    }

    #[test]
    fn a_cut_line_is_skipped_and_an_absent_journal_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path(), MAX_BYTES);
        assert!(journal.read().unwrap().is_empty());
        journal.append(&event(1)).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(CURRENT))
            .unwrap()
            .write_all(b"{\"kind\":\"dri")
            .unwrap();
        journal.append(&event(2)).unwrap();
        let ats: Vec<i64> = journal.read().unwrap().iter().map(|e| e.at).collect();
        assert_eq!(ats, vec![1, 2]);
    }

    #[test]
    fn the_dedupe_record_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::new(dir.path(), MAX_BYTES);
        assert!(journal.load_dedupe().is_empty());
        let mut d = Dedupe::default();
        d.admit(&event(5), 100);
        journal.save_dedupe(&d).unwrap();
        assert_eq!(Journal::new(dir.path(), MAX_BYTES).load_dedupe(), d);
    }
}
