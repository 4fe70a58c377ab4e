//! Staff sessions: a sign-in to the admin portal opens one, and its id travels
//! in the session's token, so signing out (or idling past the timeout) ends
//! that sign-in at once while bearer tokens for API clients live on.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261125_000010_staff_sessions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let id = |name: &'static str| ColumnDef::new(name).string_len(26).not_null().take();
        let at = |name: &'static str| ColumnDef::new(name).timestamp_with_time_zone().not_null().take();
        manager
            .create_table(
                Table::create()
                    .table("staff_session")
                    .col(id("id").primary_key())
                    .col(id("user_id"))
                    .col(at("created_at"))
                    .col(at("last_seen_at"))
                    .col(at("expires_at"))
                    .col(ColumnDef::new("ended_at").timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_staff_session_user_id")
                            .from("staff_session", "user_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(Index::create().name("ix_staff_session_user").table("staff_session").col("user_id").take())
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("staff_session").take()).await?;
        Ok(())
    }
}
