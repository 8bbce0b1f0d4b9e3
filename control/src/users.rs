//! User and token administration for the command line (`cadenza control
//! user …`), straight against the database: creating a user prints its
//! first token; tokens can be added and revoked one by one or all at once.
//! A revoked token is refused by the very next request (tokens are looked
//! up on every request; nothing caches them).

use cadenza_config::ServiceConfig as _;
use cadenza_config::ids::{UserId, random_id};
use cadenza_config::service::ControlConfig;

use crate::auth::{new_token, token_sha256};
use crate::db::{self, users};
use crate::error::ControlError;
use crate::types::Tier;
use crate::validate;

/// A new user's credentials. `token` is shown once; only its SHA-256 is
/// stored.
#[derive(Clone, PartialEq, Eq)]
pub struct NewCredentials {
    pub user_id: String,
    /// Public id of the token, for revoking it.
    pub token_id: String,
    pub token: String,
}

impl std::fmt::Debug for NewCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewCredentials")
            .field("user_id", &self.user_id)
            .field("token_id", &self.token_id)
            .finish()
    }
}

/// What went wrong with a user command: the field and why.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Control(#[from] ControlError),
}

fn invalid(e: crate::error::ApiError) -> UserError {
    UserError::Invalid(e.message().to_owned())
}

async fn open(config: &ControlConfig) -> Result<db::Db, UserError> {
    config.validate().map_err(ControlError::from)?;
    let db = db::Db::connect(&config.database).await?;
    db.migrate().await?;
    Ok(db)
}

/// Create a user (`id` random when `None`) and its first token.
pub async fn create_user(
    config: &ControlConfig,
    display_name: &str,
    tier: Tier,
    country: &str,
    id: Option<&str>,
) -> Result<NewCredentials, UserError> {
    let display_name = validate::text("--name", display_name, 200).map_err(invalid)?;
    let country = validate::country("--country", country).map_err(invalid)?;
    let id: UserId = match id {
        Some(id) => id.parse().map_err(|e| UserError::Invalid(format!("--id: {e}")))?,
        None => random_id(22).parse().map_err(|e| UserError::Invalid(format!("generated id: {e}")))?,
    };
    let db = open(config).await?;
    let token = new_token();
    let sha = token_sha256(&token);
    let created = users::create(
        &db,
        &users::NewUser { id: &id, display_name: &display_name, tier, country: &country, token_sha256: &sha },
    )
    .await;
    db.close().await;
    created.map_err(invalid)?;
    Ok(NewCredentials { user_id: id.to_string(), token_id: users::token_id(&sha), token })
}

/// Another token for an existing user.
pub async fn add_token(config: &ControlConfig, user: &str) -> Result<NewCredentials, UserError> {
    validate::id("--user", user).map_err(invalid)?;
    let db = open(config).await?;
    let token = new_token();
    let sha = token_sha256(&token);
    let added = users::add_token(&db, user, &sha).await;
    db.close().await;
    if !added.map_err(invalid)? {
        return Err(UserError::Invalid(format!("--user: no user {user:?}")));
    }
    Ok(NewCredentials { user_id: user.to_owned(), token_id: users::token_id(&sha), token })
}

/// What to revoke.
#[derive(Debug, Clone)]
pub enum Revoke {
    /// The token itself.
    Token(String),
    /// A token by its public id (`tok_…`).
    TokenId(String),
    /// Every token of a user.
    User(String),
}

/// Revoke tokens; how many were revoked (0 when none matched).
pub async fn revoke(config: &ControlConfig, what: &Revoke) -> Result<u64, UserError> {
    let db = open(config).await?;
    let done = match what {
        Revoke::Token(t) => users::revoke_token(&db, &users::token_id(&token_sha256(t))).await.map(u64::from),
        Revoke::TokenId(id) => users::revoke_token(&db, id).await.map(u64::from),
        Revoke::User(u) => users::revoke_user_tokens(&db, u).await,
    };
    db.close().await;
    done.map_err(invalid)
}
