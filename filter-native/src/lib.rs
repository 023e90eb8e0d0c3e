//! meshmux's Envoy filter as a dynamic module (`envoy.filters.http.dynamic_modules`, Envoy
//! 1.40): the same `policy` core and `Exchange` as the wasm filter, loaded in-process. `abi`
//! is the only module allowed `unsafe` (the C ABI); the rest maps the exchange's actions to
//! it and decides nothing itself. A panic is caught at the ABI boundary and fails that
//! request closed; it never unwinds into Envoy.

mod abi;
mod metrics;
mod root;
mod stream;

#[cfg(test)]
mod tests;
