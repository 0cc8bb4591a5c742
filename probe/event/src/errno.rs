//! Linux errno values the code compares results with, in one place. Event
//! results (`evt.res`) are negative errnos: compare with `-EINPROGRESS`.

/// A non-blocking `connect` is under way (counts as a connection attempt).
pub const EINPROGRESS: i64 = 115;

#[cfg(test)]
mod tests {
    /// The field table (`evt.res` names, indexed by the kernel's numbers)
    /// agrees.
    #[test]
    fn the_field_table_names_it() {
        assert_eq!(crate::fields::res_name(-super::EINPROGRESS), "EINPROGRESS");
    }
}
