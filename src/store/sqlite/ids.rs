//! Typed ids as SQLite text parameters.

use rusqlite::ToSql;
use rusqlite::types::ToSqlOutput;

use crate::model::{ChatId, FlowId, InputRequestId, KeyId, RunId, TenantId};

macro_rules! id_to_sql {
    ($($id:ty),*) => {$(
        impl ToSql for $id {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }
    )*};
}

id_to_sql!(ChatId, FlowId, InputRequestId, KeyId, RunId, TenantId);
