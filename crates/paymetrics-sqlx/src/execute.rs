//! A query taken apart so its SQL can be read before it is handed on.
//!
//! sqlx's `Execute::sql` consumes the query, so the wrapper reads everything else first (the
//! bound arguments, the prepared statement if any, whether to cache it) and hands the driver an
//! equivalent query built from the parts.

use sqlx::{Database, Execute, SqlStr, error::BoxDynError};

pub(crate) struct Parts<DB: Database> {
    sql: SqlStr,
    statement: Option<DB::Statement>,
    arguments: Option<Result<Option<DB::Arguments>, BoxDynError>>,
    persistent: bool,
}

impl<DB: Database> Parts<DB> {
    pub(crate) fn new<'q>(mut query: impl Execute<'q, DB>) -> Self {
        let arguments = Some(query.take_arguments());
        let persistent = query.persistent();
        // Only queries made from a prepared statement carry one; cloning it is an Arc bump.
        let statement = query.statement().cloned();
        Self {
            sql: query.sql(),
            statement,
            arguments,
            persistent,
        }
    }

    pub(crate) fn text(&self) -> &str {
        self.sql.as_str()
    }
}

impl<DB: Database> Execute<'_, DB> for Parts<DB> {
    fn sql(self) -> SqlStr {
        self.sql
    }

    fn statement(&self) -> Option<&DB::Statement> {
        self.statement.as_ref()
    }

    fn take_arguments(&mut self) -> Result<Option<DB::Arguments>, BoxDynError> {
        self.arguments.take().unwrap_or(Ok(None))
    }

    fn persistent(&self) -> bool {
        self.persistent
    }
}
