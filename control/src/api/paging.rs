//! Paging: the `limit`/`offset` query parameters every list takes, and the
//! paging object every list answers with ([`Paging`]).

use axum::http::Uri;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;
use crate::types::Paging;

/// Default `limit`.
pub(crate) const DEFAULT_LIMIT: u32 = 20;
/// Largest `limit`.
pub(crate) const MAX_LIMIT: u32 = 50;
/// Largest `offset` of an ordinary list (a playlist holds at most 10,000
/// items; a library, an artist's albums are far below).
pub(crate) const MAX_OFFSET: u32 = 100_000;

/// `?limit&offset`, the query of every list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Items per page.
    #[param(minimum = 1, maximum = 50, default = 20)]
    limit: Option<u32>,
    /// Index of the first item.
    #[param(maximum = 100_000, default = 0)]
    offset: Option<u32>,
}

impl PageQuery {
    pub(crate) fn page(&self) -> Result<Page, ApiError> {
        Page::of(self.limit, self.offset)
    }
}

/// `?ids=a,b,c`, the query of every "several at once" route.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct IdsQuery {
    /// 1 to 50 comma-separated ids; answers keep their order.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}(,[A-Za-z0-9_-]{1,64}){0,49}$", example = "t1,t2")]
    ids: String,
}

impl IdsQuery {
    /// 1 to [`MAX_LIMIT`] ids, each checked by `check`; errors name `ids`
    /// or `ids[i]`.
    pub(crate) fn ids(
        &self,
        check: impl Fn(&str, &str) -> Result<String, ApiError>,
    ) -> Result<Vec<String>, ApiError> {
        let parts: Vec<&str> = self.ids.split(',').collect();
        if self.ids.is_empty() || parts.len() > MAX_LIMIT as usize {
            let n = if self.ids.is_empty() { 0 } else { parts.len() };
            return Err(ApiError::invalid(format!(
                "ids: must list 1 to {MAX_LIMIT} comma-separated ids, got {n}"
            )));
        }
        parts.iter().enumerate().map(|(i, id)| check(&format!("ids[{i}]"), id)).collect()
    }
}

/// A validated window of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Page {
    pub(crate) limit: u32,
    pub(crate) offset: u32,
}

impl Page {
    /// From the query's `limit` and `offset`, with defaults; `max_offset`
    /// bounds how deep a list may be paged.
    pub(crate) fn new(limit: Option<u32>, offset: Option<u32>, max_offset: u32) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(format!("limit: must be between 1 and {MAX_LIMIT}, got {limit}")));
        }
        let offset = offset.unwrap_or(0);
        if offset > max_offset {
            return Err(ApiError::invalid(format!("offset: must be at most {max_offset}, got {offset}")));
        }
        Ok(Self { limit, offset })
    }

    pub(crate) fn of(limit: Option<u32>, offset: Option<u32>) -> Result<Self, ApiError> {
        Self::new(limit, offset, MAX_OFFSET)
    }

    /// `LIMIT`/`OFFSET` as bound parameters.
    pub(crate) fn sql(self) -> (i64, i64) {
        (i64::from(self.limit), i64::from(self.offset))
    }

    /// The paging object of `items`, this window of a list of `total`
    /// items at `uri`: `href`, `next` and `previous` are `uri`'s path and
    /// query with `limit`/`offset` set (other parameters kept, in order).
    pub(crate) fn paging<T>(self, uri: &Uri, total: u64, items: Vec<T>) -> Paging<T> {
        let at = |offset: u32| link(uri, self.limit, offset);
        let end = u64::from(self.offset) + u64::from(self.limit);
        let next = (end < total).then(|| at(self.offset + self.limit));
        let previous = (self.offset > 0).then(|| at(self.offset.saturating_sub(self.limit)));
        Paging { href: at(self.offset), items, limit: self.limit, offset: self.offset, total, next, previous }
    }
}

/// `uri`'s path and query with `limit` and `offset` replaced.
fn link(uri: &Uri, limit: u32, offset: u32) -> String {
    let mut out = String::from(uri.path());
    out.push('?');
    if let Some(query) = uri.query() {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let key = pair.split('=').next().unwrap_or_default();
            if key != "limit" && key != "offset" {
                out.push_str(pair);
                out.push('&');
            }
        }
    }
    out.push_str(&format!("offset={offset}&limit={limit}"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_offsets() {
        assert_eq!(Page::of(None, None).unwrap(), Page { limit: 20, offset: 0 });
        assert_eq!(Page::of(Some(50), Some(7)).unwrap(), Page { limit: 50, offset: 7 });
        for (limit, offset) in [(Some(0), None), (Some(51), None), (None, Some(100_001))] {
            let e = Page::of(limit, offset).unwrap_err();
            let text = format!("{e:?}");
            assert!(text.contains(if limit.is_some() { "limit:" } else { "offset:" }), "{text}");
        }
    }

    #[test]
    fn links_keep_other_parameters() {
        let uri: Uri = "/v1/search?q=a%20b&type=track&limit=10&offset=10".parse().unwrap();
        let p = Page { limit: 10, offset: 10 }.paging(&uri, 25, vec![1, 2]);
        assert_eq!(p.href, "/v1/search?q=a%20b&type=track&offset=10&limit=10");
        assert_eq!(p.next.as_deref(), Some("/v1/search?q=a%20b&type=track&offset=20&limit=10"));
        assert_eq!(p.previous.as_deref(), Some("/v1/search?q=a%20b&type=track&offset=0&limit=10"));
        let last = Page { limit: 10, offset: 20 }.paging(&uri, 25, vec![0; 5]);
        assert_eq!(last.next, None);
        let first: Uri = "/v1/me/tracks".parse().unwrap();
        let p = Page { limit: 20, offset: 0 }.paging(&first, 0, Vec::<u8>::new());
        assert_eq!((p.href.as_str(), p.next, p.previous), ("/v1/me/tracks?offset=0&limit=20", None, None));
    }
}
