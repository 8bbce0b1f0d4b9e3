//! Users and their API tokens.

use cadenza_config::ids::UserId;
use sqlx::Row;

use super::{Db, is_unique_violation, now_ms};
use crate::error::{ApiError, ErrorKind};
use crate::types::Tier;

/// `last_used` is refreshed at most this often per token, so a busy
/// player does not turn every request into a write.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

/// An authenticated user.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub(crate) id: UserId,
    pub(crate) tier: Tier,
}

/// A new user.
#[derive(Debug)]
pub(crate) struct NewUser<'a> {
    pub(crate) id: &'a UserId,
    pub(crate) display_name: &'a str,
    pub(crate) tier: Tier,
    pub(crate) country: &'a str,
    /// Lower-case hex SHA-256 of the bearer token.
    pub(crate) token_sha256: &'a str,
}

/// Insert a user and their first token in one transaction.
/// An existing id is a 409 `already_exists`.
pub(crate) async fn create(db: &Db, user: &NewUser<'_>) -> Result<(), ApiError> {
    let now = now_ms();
    let mut tx = db.begin_write().await?;
    let inserted = sqlx::query(
        "INSERT INTO users (id, display_name, tier, country, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user.id.as_str())
    .bind(user.display_name)
    .bind(user.tier.as_str())
    .bind(user.country)
    .bind(now)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            return Err(ApiError::new(
                ErrorKind::AlreadyExists,
                format!("id: user {:?} already exists", user.id.as_str()),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    insert_token(&mut tx, user.id.as_str(), user.token_sha256, now).await?;
    tx.commit().await?;
    Ok(())
}

/// The public id of a token: `tok_` and the first 16 hex digits of its
/// SHA-256 (what migration 0003 gave existing tokens).
pub(crate) fn token_id(token_sha256: &str) -> String {
    format!("tok_{}", &token_sha256[..16])
}

async fn insert_token(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user: &str,
    token_sha256: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO api_tokens (token_sha256, id, user_id, created_at) VALUES ($1, $2, $3, $4)")
        .bind(token_sha256)
        .bind(token_id(token_sha256))
        .bind(user)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Give user `user` another token; `false` if there is no such user.
pub(crate) async fn add_token(db: &Db, user: &str, token_sha256: &str) -> Result<bool, ApiError> {
    let mut tx = db.begin_write().await?;
    let exists =
        sqlx::query("SELECT id FROM users WHERE id = $1").bind(user).fetch_optional(&mut *tx).await?;
    if exists.is_none() {
        return Ok(false);
    }
    insert_token(&mut tx, user, token_sha256, now_ms()).await?;
    tx.commit().await?;
    Ok(true)
}

/// Revoke the token with public id `id`; `false` if there is none.
pub(crate) async fn revoke_token(db: &Db, id: &str) -> Result<bool, ApiError> {
    let done = sqlx::query("DELETE FROM api_tokens WHERE id = $1").bind(id).execute(db.pool()).await?;
    Ok(done.rows_affected() > 0)
}

/// Revoke every token of `user`; how many there were.
pub(crate) async fn revoke_user_tokens(db: &Db, user: &str) -> Result<u64, ApiError> {
    let done = sqlx::query("DELETE FROM api_tokens WHERE user_id = $1").bind(user).execute(db.pool()).await?;
    Ok(done.rows_affected())
}

/// The user holding the token whose SHA-256 is `token_sha256`, refreshing
/// the token's `last_used` when it is stale.
pub(crate) async fn by_token(db: &Db, token_sha256: &str) -> Result<Option<User>, ApiError> {
    let row = sqlx::query(
        "SELECT u.id, u.tier, k.last_used
         FROM api_tokens k JOIN users u ON u.id = k.user_id
         WHERE k.token_sha256 = $1",
    )
    .bind(token_sha256)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let id: String = row.try_get("id")?;
    let tier: String = row.try_get("tier")?;
    let last_used: Option<i64> = row.try_get("last_used")?;
    let user = User {
        id: id.parse().map_err(|e| ApiError::internal("users.id", &e))?,
        tier: Tier::parse(&tier)
            .ok_or_else(|| ApiError::internal("users.tier", &format!("tier {tier:?}")))?,
    };
    let now = now_ms();
    if last_used.is_none_or(|t| now - t >= LAST_USED_GRANULARITY_MS) {
        // Bookkeeping only: a failure here must not fail the request.
        if let Err(e) = sqlx::query("UPDATE api_tokens SET last_used = $1 WHERE token_sha256 = $2")
            .bind(now)
            .bind(token_sha256)
            .execute(db.pool())
            .await
        {
            tracing::warn!(error = %e, "cannot record token use");
        }
    }
    Ok(Some(user))
}
