//! Bodies of the library API (to be written).
