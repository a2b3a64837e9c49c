//! The closed set of `error_type` tag values: sqlx's error kinds, never an error's message.

use sqlx::error::{Error, ErrorKind};

/// Why a query failed: the `error_type` tag of [`QUERIES_ERRORS`](crate::QUERIES_ERRORS).
///
/// One value per [`sqlx::Error`] variant; database errors are split by
/// [`DatabaseError::kind`](sqlx::error::DatabaseError::kind) (constraint violations) and are
/// [`ErrorType::Database`] otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorType {
    /// A unique or primary key constraint was violated.
    UniqueViolation,
    /// A foreign key constraint was violated.
    ForeignKeyViolation,
    /// A not-null constraint was violated.
    NotNullViolation,
    /// A check constraint was violated.
    CheckViolation,
    /// An exclusion constraint was violated.
    ExclusionViolation,
    /// Any other error the database returned (syntax, missing table, deadlock, ...).
    Database,
    /// `Error::Configuration`.
    Configuration,
    /// `Error::InvalidArgument`.
    InvalidArgument,
    /// `Error::Io`: the connection failed.
    Io,
    /// `Error::Tls`.
    Tls,
    /// `Error::Protocol`: unexpected data from the server.
    Protocol,
    /// `Error::RowNotFound`.
    RowNotFound,
    /// `Error::TypeNotFound`.
    TypeNotFound,
    /// `Error::ColumnIndexOutOfBounds`.
    ColumnIndexOutOfBounds,
    /// `Error::ColumnNotFound`.
    ColumnNotFound,
    /// `Error::ColumnDecode`.
    ColumnDecode,
    /// `Error::Encode`: a bound argument could not be encoded.
    Encode,
    /// `Error::Decode`.
    Decode,
    /// `Error::AnyDriverError`.
    AnyDriver,
    /// `Error::PoolTimedOut`: no connection became free in time.
    PoolTimedOut,
    /// `Error::PoolClosed`.
    PoolClosed,
    /// `Error::WorkerCrashed` (SQLite's worker thread).
    WorkerCrashed,
    /// `Error::BeginFailed` and `Error::InvalidSavePointStatement`.
    Transaction,
    /// Any error sqlx adds in a later version.
    Other,
}

impl ErrorType {
    /// How many values there are.
    pub(crate) const COUNT: usize = ErrorType::Other as usize + 1;

    /// The type of `error`.
    pub fn of(error: &Error) -> Self {
        match error {
            Error::Database(e) => match e.kind() {
                ErrorKind::UniqueViolation => ErrorType::UniqueViolation,
                ErrorKind::ForeignKeyViolation => ErrorType::ForeignKeyViolation,
                ErrorKind::NotNullViolation => ErrorType::NotNullViolation,
                ErrorKind::CheckViolation => ErrorType::CheckViolation,
                ErrorKind::ExclusionViolation => ErrorType::ExclusionViolation,
                _ => ErrorType::Database,
            },
            Error::Configuration(_) => ErrorType::Configuration,
            Error::InvalidArgument(_) => ErrorType::InvalidArgument,
            Error::Io(_) => ErrorType::Io,
            Error::Tls(_) => ErrorType::Tls,
            Error::Protocol(_) => ErrorType::Protocol,
            Error::RowNotFound => ErrorType::RowNotFound,
            Error::TypeNotFound { .. } => ErrorType::TypeNotFound,
            Error::ColumnIndexOutOfBounds { .. } => ErrorType::ColumnIndexOutOfBounds,
            Error::ColumnNotFound(_) => ErrorType::ColumnNotFound,
            Error::ColumnDecode { .. } => ErrorType::ColumnDecode,
            Error::Encode(_) => ErrorType::Encode,
            Error::Decode(_) => ErrorType::Decode,
            Error::AnyDriverError(_) => ErrorType::AnyDriver,
            Error::PoolTimedOut => ErrorType::PoolTimedOut,
            Error::PoolClosed => ErrorType::PoolClosed,
            Error::WorkerCrashed => ErrorType::WorkerCrashed,
            Error::BeginFailed | Error::InvalidSavePointStatement => ErrorType::Transaction,
            _ => ErrorType::Other,
        }
    }

    /// The tag value, in snake case: `unique_violation`, `database`, `pool_timed_out`, ...
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorType::UniqueViolation => "unique_violation",
            ErrorType::ForeignKeyViolation => "foreign_key_violation",
            ErrorType::NotNullViolation => "not_null_violation",
            ErrorType::CheckViolation => "check_violation",
            ErrorType::ExclusionViolation => "exclusion_violation",
            ErrorType::Database => "database",
            ErrorType::Configuration => "configuration",
            ErrorType::InvalidArgument => "invalid_argument",
            ErrorType::Io => "io",
            ErrorType::Tls => "tls",
            ErrorType::Protocol => "protocol",
            ErrorType::RowNotFound => "row_not_found",
            ErrorType::TypeNotFound => "type_not_found",
            ErrorType::ColumnIndexOutOfBounds => "column_index_out_of_bounds",
            ErrorType::ColumnNotFound => "column_not_found",
            ErrorType::ColumnDecode => "column_decode",
            ErrorType::Encode => "encode",
            ErrorType::Decode => "decode",
            ErrorType::AnyDriver => "any_driver",
            ErrorType::PoolTimedOut => "pool_timed_out",
            ErrorType::PoolClosed => "pool_closed",
            ErrorType::WorkerCrashed => "worker_crashed",
            ErrorType::Transaction => "transaction",
            ErrorType::Other => "other",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_variants_not_messages() {
        assert_eq!(ErrorType::of(&Error::PoolTimedOut), ErrorType::PoolTimedOut);
        assert_eq!(ErrorType::of(&Error::RowNotFound), ErrorType::RowNotFound);
        assert_eq!(
            ErrorType::of(&Error::Protocol("user 42 said no".into())),
            ErrorType::Protocol
        );
        let io = std::io::Error::other("reset");
        assert_eq!(ErrorType::of(&Error::Io(io)).as_str(), "io");
    }

    #[test]
    fn indices_cover_every_value() {
        assert_eq!(ErrorType::Other.index(), ErrorType::COUNT - 1);
        assert_eq!(ErrorType::UniqueViolation.index(), 0);
    }
}
