//! A streaming `multipart/form-data` parser for uploads: bytes go in as they arrive, part
//! events come out, and at most one delimiter's worth of body is held back between pushes.
//! File data goes out as views of the pieces pushed, without a copy, except around the
//! delimiters and headers.
//!
//! Parts follow the go-ipfs-files convention the original's clients use: each file, directory
//! or symlink is one part whose `filename` (percent-encoded) is its path;
//! `Content-Type: application/x-directory` marks a directory and `application/symlink` a
//! symlink (the body is the target). Nested `multipart/mixed` directories (an older client
//! format) are refused.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

/// Most bytes of headers accepted for one part.
pub const MAX_PART_HEADER_BYTES: usize = 16 * 1024;

/// What a part holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartKind {
    /// File content follows.
    File,
    /// An (empty) directory entry.
    Directory,
    /// The body is the link target.
    Symlink,
}

/// The headers of one part, interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHeader {
    /// The form field name (`file` for the original's clients).
    pub field: String,
    /// The entry's path, percent-decoded; empty when the part had no filename.
    pub path: String,
    /// File, directory or symlink.
    pub kind: PartKind,
}

/// One step of the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartEvent {
    /// A part starts.
    Begin(PartHeader),
    /// Some bytes of the current part's body.
    Data(Bytes),
    /// The current part is complete.
    End,
}

/// Why an upload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// The content type is not multipart or has no boundary.
    #[error("expected a multipart/form-data body with a boundary, got content type '{0}'")]
    NotMultipart(String),
    /// Headers too long or malformed.
    #[error("malformed multipart part headers: {0}")]
    BadHeaders(String),
    /// The body stopped before the closing delimiter.
    #[error("the multipart body ended before its closing boundary (upload cut short?)")]
    Truncated,
    /// Nested multipart directories.
    #[error("nested multipart/mixed directories are not supported; send one part per file with its path as filename")]
    Nested,
}

/// Extracts the boundary from a `Content-Type` value.
pub fn boundary_of(content_type: &str) -> Result<String, MultipartError> {
    let bad = || MultipartError::NotMultipart(content_type.to_string());
    let mut parts = content_type.split(';');
    let mime = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    if !mime.starts_with("multipart/") {
        return Err(bad());
    }
    for p in parts {
        if let Some((k, v)) = p.split_once('=')
            && k.trim().eq_ignore_ascii_case("boundary")
        {
            let v = v.trim().trim_matches('"');
            if !v.is_empty() && v.len() <= 200 {
                return Ok(v.to_string());
            }
        }
    }
    Err(bad())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// After a delimiter: `--` ends the body, CRLF starts a part.
    AfterDelimiter,
    /// Reading headers up to the empty line.
    Headers,
    /// Reading the body up to the next delimiter.
    Body,
    /// Closing delimiter seen.
    Done,
}

/// The parser. Push bytes with [`push`](Self::push), drain events with
/// [`next_event`](Self::next_event) until it answers `None`, and call
/// [`finish`](Self::finish) at the end of the body.
#[derive(Debug)]
pub struct MultipartParser {
    /// `\r\n--boundary`.
    delimiter: Vec<u8>,
    /// Body data to hand out before anything in `buf`, mostly views of pushed pieces.
    ready: VecDeque<Bytes>,
    /// Bytes pushed and not handed out: headers, and body bytes that may begin a delimiter.
    buf: BytesMut,
    state: State,
    finder: memchr::memmem::Finder<'static>,
}

impl MultipartParser {
    /// A parser for parts separated by `boundary`.
    pub fn new(boundary: &str) -> MultipartParser {
        let delimiter = format!("\r\n--{boundary}").into_bytes();
        let finder = memchr::memmem::Finder::new(&delimiter).into_owned();
        let mut buf = BytesMut::with_capacity(64 * 1024);
        // The first delimiter has no CRLF before it; pretend it had.
        buf.extend_from_slice(b"\r\n");
        MultipartParser { delimiter, ready: VecDeque::new(), buf, state: State::Preamble, finder }
    }

    /// Appends body bytes. Within a part's body, the bytes up to where a delimiter may begin
    /// are kept as they came, to be handed out without a copy.
    pub fn push(&mut self, data: Bytes) {
        let probe_len = self.delimiter.len() - 1;
        if self.state != State::Body || self.buf.len() > probe_len || data.len() < probe_len {
            self.buf.extend_from_slice(&data);
            return;
        }
        if !self.buf.is_empty() {
            // What is held may begin a delimiter that this piece completes.
            let mut probe = self.buf.to_vec();
            probe.extend_from_slice(&data[..probe_len]);
            if self.finder.find(&probe).is_some() {
                self.buf.extend_from_slice(&data);
                return;
            }
            self.ready.push_back(self.buf.split().freeze());
        }
        let data_len = self.body_data_len(&data);
        if data_len > 0 {
            self.ready.push_back(data.slice(..data_len));
        }
        self.buf.extend_from_slice(&data[data_len..]);
    }

    /// How many bytes at the start of `data` are surely body data: up to the first delimiter,
    /// or else up to the last bytes that could be the start of one (these wait for more).
    fn body_data_len(&self, data: &[u8]) -> usize {
        if let Some(i) = self.finder.find(data) {
            return i;
        }
        let from = data.len().saturating_sub(self.delimiter.len() - 1);
        (from..data.len()).find(|&p| self.delimiter.starts_with(&data[p..])).unwrap_or(data.len())
    }

    /// True once the closing delimiter was read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The next event the bytes pushed so far allow, or `None` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<PartEvent>, MultipartError> {
        if let Some(data) = self.ready.pop_front() {
            return Ok(Some(PartEvent::Data(data)));
        }
        loop {
            match self.state {
                State::Done => {
                    self.buf.clear();
                    return Ok(None);
                }
                State::Preamble => match self.finder.find(&self.buf) {
                    Some(i) => {
                        self.buf.advance(i + self.delimiter.len());
                        self.state = State::AfterDelimiter;
                    }
                    None => {
                        let keep = self.delimiter.len() - 1;
                        if self.buf.len() > keep {
                            let drop = self.buf.len() - keep;
                            self.buf.advance(drop);
                        }
                        return Ok(None);
                    }
                },
                State::AfterDelimiter => {
                    if self.buf.len() < 2 {
                        return Ok(None);
                    }
                    if &self.buf[..2] == b"--" {
                        self.state = State::Done;
                        continue;
                    }
                    // Transport padding (spaces, tabs) may follow the delimiter before CRLF.
                    let Some(eol) = memchr::memmem::find(&self.buf, b"\r\n") else {
                        if self.buf.len() > 1024 {
                            return Err(MultipartError::BadHeaders("garbage after a boundary".into()));
                        }
                        return Ok(None);
                    };
                    if self.buf[..eol].iter().any(|b| !matches!(b, b' ' | b'\t')) {
                        return Err(MultipartError::BadHeaders("garbage after a boundary".into()));
                    }
                    self.buf.advance(eol + 2);
                    self.state = State::Headers;
                }
                State::Headers => {
                    // A part with no headers at all starts with the empty line directly.
                    if self.buf.starts_with(b"\r\n") {
                        self.buf.advance(2);
                        self.state = State::Body;
                        return Ok(Some(PartEvent::Begin(interpret(&[])?)));
                    }
                    let Some(end) = memchr::memmem::find(&self.buf, b"\r\n\r\n") else {
                        if self.buf.len() > MAX_PART_HEADER_BYTES {
                            return Err(MultipartError::BadHeaders(format!(
                                "more than {MAX_PART_HEADER_BYTES} bytes of part headers"
                            )));
                        }
                        return Ok(None);
                    };
                    if end > MAX_PART_HEADER_BYTES {
                        return Err(MultipartError::BadHeaders(format!(
                            "more than {MAX_PART_HEADER_BYTES} bytes of part headers"
                        )));
                    }
                    let raw = self.buf.split_to(end + 4);
                    let text = std::str::from_utf8(&raw[..end])
                        .map_err(|_| MultipartError::BadHeaders("headers are not utf-8".into()))?;
                    let header = interpret(&parse_header_lines(text)?)?;
                    self.state = State::Body;
                    return Ok(Some(PartEvent::Begin(header)));
                }
                State::Body => {
                    let n = self.body_data_len(&self.buf);
                    if n > 0 {
                        return Ok(Some(PartEvent::Data(self.buf.split_to(n).freeze())));
                    }
                    if !self.buf.starts_with(&self.delimiter) {
                        return Ok(None);
                    }
                    self.buf.advance(self.delimiter.len());
                    self.state = State::AfterDelimiter;
                    return Ok(Some(PartEvent::End));
                }
            }
        }
    }

    /// Checks the body ended properly: the closing delimiter must have been read.
    pub fn finish(&mut self) -> Result<(), MultipartError> {
        match self.state {
            State::Done => Ok(()),
            // Some clients end the body right after the last part's delimiter's `--`.
            State::AfterDelimiter if self.buf.starts_with(b"--") => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(MultipartError::Truncated),
        }
    }
}

fn parse_header_lines(text: &str) -> Result<Vec<(String, String)>, MultipartError> {
    text.split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .ok_or_else(|| MultipartError::BadHeaders(format!("header line without a colon: '{l}'")))
        })
        .collect()
}

fn interpret(headers: &[(String, String)]) -> Result<PartHeader, MultipartError> {
    let get = |k: &str| headers.iter().find(|(h, _)| h == k).map(|(_, v)| v.as_str());
    let disposition = get("content-disposition").unwrap_or_default();
    let param = |name: &str| -> Option<String> {
        disposition.split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().trim_matches('"').to_string())
        })
    };
    let field = param("name").unwrap_or_default();
    let raw_name = param("filename").unwrap_or_default();
    let path = percent_decode(&raw_name)
        .ok_or_else(|| MultipartError::BadHeaders(format!("filename '{raw_name}' is not valid percent-encoded utf-8")))?;
    let content_type = get("content-type").unwrap_or("application/octet-stream").to_ascii_lowercase();
    let kind = if content_type.starts_with("application/x-directory") {
        PartKind::Directory
    } else if content_type.starts_with("application/symlink") {
        PartKind::Symlink
    } else if content_type.starts_with("multipart/") {
        return Err(MultipartError::Nested);
    } else {
        PartKind::File
    };
    Ok(PartHeader { field, path, kind })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn body() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"dir\"\r\nContent-Type: application/x-directory\r\n\r\n");
        b.extend_from_slice(b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"dir%2Fa%20b.txt\"\r\nContent-Type: application/octet-stream\r\n\r\n");
        b.extend_from_slice(b"hello\r\n--Xy not a boundary\r\n");
        b.extend_from_slice(b"\r\n--XyZ--\r\n");
        b
    }

    fn events_in_pieces(data: &[u8], piece: usize) -> Result<Vec<PartEvent>, MultipartError> {
        let mut p = MultipartParser::new("XyZ");
        let mut events = Vec::new();
        for chunk in data.chunks(piece.max(1)) {
            p.push(Bytes::copy_from_slice(chunk));
            while let Some(e) = p.next_event()? {
                events.push(e);
            }
        }
        p.finish()?;
        Ok(events)
    }

    fn parse_in_pieces(data: &[u8], piece: usize) -> Result<Vec<PartEvent>, MultipartError> {
        let events = events_in_pieces(data, piece)?;
        // Merge data events so results compare regardless of piece size.
        let mut merged: Vec<PartEvent> = Vec::new();
        for e in events {
            match (merged.last_mut(), e) {
                (Some(PartEvent::Data(prev)), PartEvent::Data(more)) => {
                    let mut v = prev.to_vec();
                    v.extend_from_slice(&more);
                    *prev = Bytes::from(v);
                }
                (_, e) => merged.push(e),
            }
        }
        Ok(merged)
    }

    #[test]
    fn parses_directory_and_file() {
        let events = parse_in_pieces(&body(), 1 << 20).unwrap();
        assert_eq!(
            events,
            vec![
                PartEvent::Begin(PartHeader { field: "file".into(), path: "dir".into(), kind: PartKind::Directory }),
                PartEvent::End,
                PartEvent::Begin(PartHeader { field: "file".into(), path: "dir/a b.txt".into(), kind: PartKind::File }),
                PartEvent::Data(Bytes::from_static(b"hello\r\n--Xy not a boundary\r\n")),
                PartEvent::End,
            ]
        );
    }

    #[test]
    fn truncated_and_bad_input() {
        let full = body();
        for cut in [0, 10, full.len() / 2, full.len() - 9] {
            assert!(matches!(parse_in_pieces(&full[..cut], 7), Err(MultipartError::Truncated)), "cut at {cut}");
        }
        let nested = b"--XyZ\r\nContent-Type: multipart/mixed; boundary=a\r\n\r\n\r\n--XyZ--";
        assert_eq!(parse_in_pieces(nested, 100), Err(MultipartError::Nested));
        assert!(boundary_of("application/json").is_err());
        assert!(boundary_of("multipart/form-data").is_err());
        assert_eq!(boundary_of("multipart/form-data; boundary=\"ab c\"").unwrap(), "ab c");
    }

    #[test]
    fn file_data_goes_out_as_the_pieces_pushed() {
        let mut data: Vec<u8> = (0..300_000).map(|i| (i % 251) as u8).collect();
        // near-delimiters, one across where pieces end
        for at in [65_530, 100_000, 199_998] {
            data[at..at + 6].copy_from_slice(b"\r\n--Xy");
        }
        let head = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n";
        let tail = b"\r\n--XyZ--\r\n";
        let mut p = MultipartParser::new("XyZ");
        p.push(Bytes::from_static(head));
        assert!(matches!(p.next_event(), Ok(Some(PartEvent::Begin(_)))));
        let mut out = Vec::new();
        let mut copied = 0;
        for piece in [&data[..65_536], &data[65_536..200_000], &data[200_000..]] {
            let piece = Bytes::copy_from_slice(piece);
            let range = piece.as_ptr_range();
            p.push(piece.clone());
            while let Some(ev) = p.next_event().unwrap() {
                let PartEvent::Data(d) = ev else { panic!("unexpected {ev:?}") };
                if !range.contains(&d.as_ptr()) {
                    copied += d.len();
                }
                out.extend_from_slice(&d);
            }
        }
        // only the bytes that looked like a delimiter's start at a piece's end were copied:
        // "\r\n--Xy" ending the first piece and "\r\n" ending the second
        assert_eq!(copied, 6 + 2);
        p.push(Bytes::from_static(tail));
        while let Some(ev) = p.next_event().unwrap() {
            if let PartEvent::Data(d) = ev {
                out.extend_from_slice(&d);
            }
        }
        p.finish().unwrap();
        assert_eq!(out, data);
    }

    proptest! {
        #[test]
        fn any_piece_size_gives_the_same_events(piece in 1usize..64) {
            prop_assert_eq!(parse_in_pieces(&body(), piece).unwrap(), parse_in_pieces(&body(), 1 << 20).unwrap());
        }
    }
}
