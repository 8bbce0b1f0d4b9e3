//! CDNs added through the admin API. Each row holds the CDN's JSON, the
//! shape of a `[[cdns]]` config entry, secret included.

use cadenza_config::service::CdnConfig;
use sqlx::Row;

use super::{Db, now_ms};

/// Every stored CDN, by name.
pub(crate) async fn list(db: &Db) -> Result<Vec<CdnConfig>, sqlx::Error> {
    let rows = sqlx::query("SELECT name, spec FROM cdns ORDER BY name").fetch_all(db.pool()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.try_get("name")?;
        let spec: String = row.try_get("spec")?;
        match serde_json::from_str::<CdnConfig>(&spec) {
            Ok(c) if c.name == name => out.push(c),
            // Written by this code after validation, so only a hand edit
            // gets here: skip the row rather than stop serving.
            _ => tracing::error!(cdn = %name, "stored CDN does not parse; ignored"),
        }
    }
    Ok(out)
}

/// Create or replace `cdn`; `true` if it was created.
pub(crate) async fn put(db: &Db, cdn: &CdnConfig) -> Result<bool, sqlx::Error> {
    let spec = serde_json::to_string(cdn).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    let existed = sqlx::query("SELECT 1 AS one FROM cdns WHERE name = $1")
        .bind(&cdn.name)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    sqlx::query(
        "INSERT INTO cdns (name, spec, created_at, updated_at) VALUES ($1, $2, $3, $3)
         ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
    )
    .bind(&cdn.name)
    .bind(&spec)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(!existed)
}

/// Delete `name`; `false` if there was none.
pub(crate) async fn delete(db: &Db, name: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM cdns WHERE name = $1").bind(name).execute(db.pool()).await?;
    Ok(done.rows_affected() > 0)
}
