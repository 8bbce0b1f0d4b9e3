//! `POST /v1/admin/import/jsonl`: a whole catalog as JSON Lines, streamed.
//!
//! The body is read as it arrives (no size limit; each line at most
//! [`MAX_LINE`]); lines are validated one by one and written in chunks of
//! [`LINES_PER_TRANSACTION`], one transaction each, with the import's
//! multi-row inserts. A bad line stops the import with a 400 naming the
//! line; the message also says how many lines were committed before it.
//! Since every line is an upsert, the fix is to correct the line and send
//! the file again: committed lines are no-ops the second time.
//!
//! At the end, on PostgreSQL, the catalog tables are vacuumed and analysed
//! (`VACUUM (ANALYZE)`: fresh statistics, and the GIN search indexes'
//! pending lists merged); on SQLite, `PRAGMA optimize`.
//!
//! Why chunks rather than one transaction: a catalog of a million tracks
//! would otherwise hold SQLite's write lock (and a PostgreSQL snapshot) for
//! minutes, stalling every other writer; a chunk holds it for a fraction
//! of a second.

use std::collections::HashSet;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use bytes::{Buf, BytesMut};
use futures_util::StreamExt;

use super::AppState;
use super::extract::parse_json;
use crate::auth::Admin;
use crate::catalog::Batch;
use crate::db::catalog;
use crate::error::ApiError;
use crate::types::{BulkImportResponse, ImportLine, ImportRequest};

/// Lines per transaction.
pub(crate) const LINES_PER_TRANSACTION: usize = 5_000;
/// Longest line: a track with a full manifest and seek table is a few
/// hundred KiB.
const MAX_LINE: usize = 4 * 1024 * 1024;

/// A whole catalog as JSON Lines, streamed; one transaction per chunk.
// OpenAPI has no schema for a JSON Lines body as a whole: the document
// calls it text and names the line schema, `ImportLine`.
#[utoipa::path(post, path = "/v1/admin/import/jsonl", tag = "admin", security(("admin" = [])),
    request_body(content = String, content_type = "application/x-ndjson",
        description = "One `ImportLine` JSON object per line, e.g. `{\"artist\":{\"id\":\"ar1\",\"name\":\"…\"}}`; an entity's artists and album on earlier lines or in the catalog. No size limit; each line at most 4 MiB."),
    responses(
        (status = 200, description = "What was read and committed.", body = BulkImportResponse),
        (status = 400, description = "`invalid_request`: a bad line (the message names it and what was committed before it), or a content type other than JSON Lines."),
    ))]
pub(crate) async fn import_jsonl(
    State(state): State<AppState>,
    _admin: Admin,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BulkImportResponse>, ApiError> {
    let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mime = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if !matches!(mime.as_str(), "application/x-ndjson" | "application/jsonl" | "application/json-lines") {
        return Err(ApiError::invalid("content-type: expected application/x-ndjson (JSON Lines)"));
    }
    let mut import = Import::default();
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    let mut line_no: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("body: cannot read: {e}")))?;
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line = buf.split_to(end + 1);
            line_no += 1;
            import.line(&state, line_no, &line[..end]).await?;
        }
        if buf.len() > MAX_LINE {
            return Err(
                import.fail(ApiError::invalid(format!("line {}: longer than {MAX_LINE} bytes", line_no + 1)))
            );
        }
    }
    if !buf.is_empty() {
        line_no += 1;
        let rest = buf.split_to(buf.remaining());
        import.line(&state, line_no, &rest).await?;
    }
    import.flush(&state).await?;
    if import.done.transactions > 0
        && let Err(e) = catalog::after_bulk_import(state.db()).await
    {
        // The data is committed; only the upkeep failed.
        tracing::warn!(error = %e, "vacuum/analyze after a bulk import failed");
    }
    tracing::info!(
        lines = import.done.lines,
        artists = import.done.artists,
        albums = import.done.albums,
        tracks = import.done.tracks,
        transactions = import.done.transactions,
        "JSON Lines catalog imported"
    );
    Ok(Json(import.done))
}

/// The chunk being gathered and what is committed so far.
#[derive(Default)]
struct Import {
    chunk: ImportRequest,
    /// Line number of each entity of the chunk, per kind.
    lines: [Vec<u64>; 3],
    /// Ids in the chunk, per kind: a repeated id starts a new chunk, so the
    /// later line wins (as an upsert would).
    ids: [HashSet<String>; 3],
    /// Lines in the chunk.
    pending: u64,
    /// Last line committed.
    committed_line: u64,
    done: BulkImportResponse,
}

impl Import {
    async fn line(&mut self, state: &AppState, no: u64, raw: &[u8]) -> Result<(), ApiError> {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let entity: ImportLine =
            parse_json(raw).map_err(|e| self.fail(e.map_message(|m| format!("line {no}: {m}"))))?;
        // Validate the line alone, so its error names the line.
        let (kind, id) = match &entity {
            ImportLine::Artist(a) => (0, a.id.clone()),
            ImportLine::Album(a) => (1, a.id.clone()),
            ImportLine::Track(t) => (2, t.id.as_str().to_owned()),
        };
        let single = match &entity {
            ImportLine::Artist(a) => ImportRequest { artists: vec![a.clone()], ..ImportRequest::default() },
            ImportLine::Album(a) => ImportRequest { albums: vec![a.clone()], ..ImportRequest::default() },
            ImportLine::Track(t) => ImportRequest { tracks: vec![(**t).clone()], ..ImportRequest::default() },
        };
        Batch::validate(single).map_err(|e| self.fail(e.map_message(|m| relabel_one(m, no))))?;
        if self.ids[kind].contains(&id) || self.pending as usize >= LINES_PER_TRANSACTION {
            self.flush(state).await?;
        }
        self.ids[kind].insert(id);
        self.lines[kind].push(no);
        match entity {
            ImportLine::Artist(a) => self.chunk.artists.push(a),
            ImportLine::Album(a) => self.chunk.albums.push(a),
            ImportLine::Track(t) => self.chunk.tracks.push(*t),
        }
        self.pending += 1;
        self.done.lines += 1;
        Ok(())
    }

    /// Commit the gathered chunk in one transaction.
    async fn flush(&mut self, state: &AppState) -> Result<(), ApiError> {
        if self.pending == 0 {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.chunk);
        let lines = std::mem::take(&mut self.lines);
        let last_line = lines.iter().flatten().copied().max().unwrap_or(self.committed_line);
        let relabel = |m: &str| relabel_chunk(m, &lines);
        let batch = Batch::validate(chunk).map_err(|e| self.fail(e.map_message(relabel)))?;
        let counts =
            catalog::import(state.db(), &batch).await.map_err(|e| self.fail(e.map_message(relabel)))?;
        self.done.artists += counts.artists;
        self.done.albums += counts.albums;
        self.done.tracks += counts.tracks;
        self.done.transactions += 1;
        self.committed_line = last_line;
        self.pending = 0;
        self.ids = Default::default();
        Ok(())
    }

    /// `e`, noting what was committed before it.
    fn fail(&self, e: ApiError) -> ApiError {
        if self.done.transactions == 0 {
            e.with_note(" (nothing was imported)")
        } else {
            e.with_note(&format!(
                " (the {} lines up to line {} were imported; the import is idempotent: fix the line and send the file again)",
                self.done.lines - self.pending,
                self.committed_line
            ))
        }
    }
}

/// `artists[0].name: …` → `line 7: artist.name: …`.
fn relabel_one(message: &str, line: u64) -> String {
    for (list, kind) in [("artists[0]", "artist"), ("albums[0]", "album"), ("tracks[0]", "track")] {
        if let Some(rest) = message.strip_prefix(list) {
            return format!("line {line}: {kind}{rest}");
        }
    }
    format!("line {line}: {message}")
}

/// `tracks[12].album_id: …` → `line 9031: track.album_id: …`, using the
/// chunk's line numbers.
fn relabel_chunk(message: &str, lines: &[Vec<u64>; 3]) -> String {
    for (k, (list, kind)) in
        [("artists[", "artist"), ("albums[", "album"), ("tracks[", "track")].iter().enumerate()
    {
        if let Some(rest) = message.strip_prefix(list)
            && let Some((index, rest)) = rest.split_once(']')
            && let Ok(i) = index.parse::<usize>()
            && let Some(line) = lines[k].get(i)
        {
            return format!("line {line}: {kind}{rest}");
        }
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_lines() {
        assert_eq!(
            relabel_one("tracks[0].title: must not be empty", 7),
            "line 7: track.title: must not be empty"
        );
        let lines = [vec![1, 2], vec![3], vec![4, 9031]];
        assert_eq!(
            relabel_chunk("tracks[1].album_id: unknown album \"x\"", &lines),
            "line 9031: track.album_id: unknown album \"x\""
        );
        assert_eq!(
            relabel_chunk("batch violates a catalog constraint", &lines),
            "batch violates a catalog constraint"
        );
    }
}
