//! An HTTP filter that does nothing: what every proxy-wasm filter costs before it does any work
//! (context creation and the callbacks Envoy makes on each request). `scripts/bench.sh` measures
//! it as the `empty-wasm` floor.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{ContextType, LogLevel};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root) });
}}

struct Root;

impl Context for Root {}

impl RootContext for Root {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Empty))
    }
}

struct Empty;

impl Context for Empty {}

impl HttpContext for Empty {}
