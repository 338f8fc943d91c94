//! Hand-written against the proxy-wasm ABI 0.2.1, not the SDK: the SDK exports every callback,
//! and each exported callback is a cost unit Envoy pays per request, so an SDK module would not
//! be a floor.
//!
//! The measured floor of a Wasm filter that routes by a header (`scripts/bench.sh`, configuration
//! `floor`): on the request headers it reads the header map once (one host call, one buffer the
//! host returns) and writes the variant header (one host call), nothing else: no decision, no
//! stream state, no metrics. What Canary Router costs above it is its own work and the cost
//! units its configuration needs beyond these (BENCHMARKS.md, "Cost units").
//!
//! Exports: the ABI marker, the allocator the host returns buffers through, context creation
//! (Envoy calls it for every stream whether or not the module exports it) and the request
//! headers callback.

#[cfg(target_arch = "wasm32")]
mod abi {
    /// `MapType::HttpRequestHeaders` of the ABI.
    const REQUEST_HEADERS: u32 = 0;
    const NAME: &[u8] = b"x-canary-variant";
    /// Every benchmark request belongs to the stable variant (scripts/bench/configs.py, `USER`).
    const VARIANT: &[u8] = b"stable";

    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_get_header_map_pairs(
            map_type: u32,
            return_map_data: *mut *mut u8,
            return_map_size: *mut usize,
        ) -> u32;
        fn proxy_replace_header_map_value(
            map_type: u32,
            key_data: *const u8,
            key_size: usize,
            value_data: *const u8,
            value_size: usize,
        ) -> u32;
    }

    #[no_mangle]
    pub extern "C" fn proxy_abi_version_0_2_1() {}

    #[no_mangle]
    pub extern "C" fn _initialize() {}

    /// The host allocates the header map it returns through this; `proxy_on_request_headers`
    /// frees it.
    #[no_mangle]
    pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
        let mut buf: Vec<u8> = Vec::with_capacity(size);
        let ptr = buf.as_mut_ptr();
        std::mem::forget(buf);
        ptr
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_context_create(_context_id: u32, _parent_id: u32) {}

    #[no_mangle]
    pub extern "C" fn proxy_on_request_headers(
        _context_id: u32,
        _headers: usize,
        _eos: u32,
    ) -> u32 {
        let mut ptr: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: the host writes a pointer it got from `proxy_on_memory_allocate` (or null) and
        // its size; the two names and values are static slices.
        unsafe {
            if proxy_get_header_map_pairs(REQUEST_HEADERS, &mut ptr, &mut size) == 0
                && !ptr.is_null()
            {
                drop(Vec::from_raw_parts(ptr, size, size));
            }
            proxy_replace_header_map_value(
                REQUEST_HEADERS,
                NAME.as_ptr(),
                NAME.len(),
                VARIANT.as_ptr(),
                VARIANT.len(),
            );
        }
        0
    }
}
