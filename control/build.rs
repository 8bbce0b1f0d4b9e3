//! Rebuild when a migration changes: `sqlx::migrate!` embeds the files, and
//! the compiler does not watch them by itself.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
