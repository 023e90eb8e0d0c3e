//! What can be checked without Envoy: a panic inside a guarded hook is caught (the e2e test
//! `native_panic` checks the same inside Envoy, through the `panic-probe` build).

use crate::abi::caught;

#[test]
#[allow(clippy::panic)]
fn a_panic_in_a_hook_is_caught_not_unwound_into_the_caller() {
    assert_eq!(caught(|| 7), Ok(7));
    let r: Result<u8, String> = caught(|| panic!("boom"));
    assert_eq!(r, Err("boom".to_owned()));
}
