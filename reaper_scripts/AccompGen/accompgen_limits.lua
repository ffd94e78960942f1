-- @noindex
-- Written by tools/reapack_index.py from accompgen.core.decoding: do not edit by hand.
-- The ranges the bridge accepts for each request setting (defaults are the bundle's).
return {
  seed = { 0, 2147483647 },
  cfg_scale = { 0.0, 20.0 },
  temperature = { 0.0, 5.0 },
  top_k = { 0, 1048576 },
  variations = { 1, 8 },
}
