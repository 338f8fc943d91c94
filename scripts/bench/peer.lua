-- lua-peer: the job of the benchmark's typical canary-router config, written as a Lua filter as
-- cheaply as we can: one header rule (x-beta: true -> canary), otherwise a sticky bucket from
-- the x-user-id header (FNV-1a 32-bit over "reviews:" .. key, mod 10000; canary owns 0-999),
-- then x-canary-variant is replaced. No explicit request_handle:clearRouteCache(): Envoy's Lua
-- filter already clears the route cache on any change to the request headers (checked by the
-- benchmark: a user whose bucket is canary reaches the canary route), so calling it too would be
-- needless work.
-- A request without x-user-id gets a random bucket (canary-router would look at a cookie and
-- mint one; the benchmark's requests always carry the key, so that path is not measured).
local bit = require("bit")
local bxor, tobit, lshift = bit.bxor, bit.tobit, bit.lshift
local byte = string.byte
local random = math.random

-- FNV-1a state after the salt prefix "reviews:", computed once per Lua state (per worker).
local function fnv1a(h, s)
  for i = 1, #s do
    h = bxor(h, byte(s, i))
    -- h * 16777619 mod 2^32 without losing bits in a double: 16777619 = 2^24 + 403.
    h = tobit(lshift(h, 24) + h * 403)
  end
  return h
end
local SALTED = fnv1a(tobit(0x811c9dc5), "reviews:")

function envoy_on_request(handle)
  local headers = handle:headers()
  local variant
  if headers:get("x-beta") == "true" then
    variant = "canary"
  else
    local key = headers:get("x-user-id")
    local b
    if key ~= nil and key ~= "" then
      local h = fnv1a(SALTED, key)
      if h < 0 then h = h + 4294967296 end
      b = h % 10000
    else
      b = random(0, 9999)
    end
    if b < 1000 then variant = "canary" else variant = "stable" end
  end
  headers:replace("x-canary-variant", variant)
end
