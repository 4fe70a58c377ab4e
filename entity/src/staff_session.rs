//! A staff member's sign-in session (the admin portal's): its id travels in
//! the session token, which works only while the session is open — not ended
//! by signing out, not past `expires_at`, not idle longer than the admin idle
//! timeout since `last_seen_at`.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "staff_session")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub user_id: String,
    pub created_at: DateTimeUtc,
    /// When the session's token was last used, to the minute: it is written
    /// again only once it is a minute old.
    pub last_seen_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub ended_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
