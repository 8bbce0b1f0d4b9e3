//! library queries (to be written).
