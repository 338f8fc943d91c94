//! The benchmark's native floor (feature `floor`, configuration `native-floor`): the stream hooks
//! of a routing filter that reads the request headers once and writes the variant header
//! (`stable`), with no state, no decision and no metrics. What it costs over Envoy without a
//! filter is the price of Envoy's dynamic-module path; the module's own work is the rest.

use std::ffi::c_void;

use crate::abi::{self, EnvoyHttpHeader, FilterEnvoyPtr, ModuleBuffer};

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    _filter_envoy: FilterEnvoyPtr,
) -> *const c_void {
    // No per-stream state: any non-null pointer will do.
    config
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(_filter: *const c_void) {}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    // SAFETY: `envoy` is the stream Envoy is calling us for; `headers` has room for `n`.
    unsafe {
        let n =
            abi::envoy_dynamic_module_callback_http_get_headers_size(envoy, abi::REQUEST_HEADER);
        let mut headers = vec![EnvoyHttpHeader::EMPTY; n];
        let _ = abi::envoy_dynamic_module_callback_http_get_headers(
            envoy,
            abi::REQUEST_HEADER,
            headers.as_mut_ptr(),
        );
        let _ = abi::envoy_dynamic_module_callback_http_set_header(
            envoy,
            abi::REQUEST_HEADER,
            ModuleBuffer::new(b"x-canary-variant"),
            ModuleBuffer::new(b"stable"),
        );
        abi::envoy_dynamic_module_callback_http_clear_route_cache(envoy);
    }
    abi::CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    abi::CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
) -> u32 {
    abi::CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _envoy: FilterEnvoyPtr,
    _filter: *const c_void,
) {
}
