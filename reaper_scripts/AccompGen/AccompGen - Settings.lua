-- @description AccompGen: Settings
-- @version 0.5.0
-- @author AccompGen
-- @noindex
-- @about
--   The bridge command (the full path of accompgen-bridge: REAPER started from the macOS Finder does not see your
--   shell's PATH), the bundle folder to generate with (blank = the bridge's default), CFG scale and temperature
--   (blank = the bundle's own, tuned for its model), seed (blank = a new random one each run) and variations.
--   Stored in REAPER's ExtState.
-- @changelog
--   The bundle folder is the one generation asks the bridge for; blank asks for the bridge's default.

local script_dir = select(2, reaper.get_action_context()):match("^(.*[/\\])")
local lib = dofile(script_dir .. "accompgen_lib.lua")

-- REAPER fills the boxes from the defaults by CSV-like rules: a value holding an odd number of " or of ' would run on
-- into the next box (and OK would store every later setting in the wrong place). Such a value is shown as this, and
-- kept while its box still says so.
local KEEP = "(unchanged: it holds a lone quote mark)"

local function shown(value)
  local _, doubles = value:gsub('"', "")
  local _, singles = value:gsub("'", "")
  return (doubles % 2 == 1 or singles % 2 == 1) and KEEP or value
end

local settings = lib.load_settings()
local current = {}
for i, key in ipairs(lib.SETTING_ORDER) do current[i] = shown(settings[key]) end

while true do
  -- one answer per line: a path with a comma must not shift the fields after it
  local ok, answer = reaper.GetUserInputs("AccompGen settings", #lib.SETTING_ORDER,
    lib.CAPTIONS .. ",extrawidth=220,separator=\n", table.concat(current, "\n"))
  if not ok then return end
  local entered, i = {}, 0
  for value in (answer .. "\n"):gmatch("([^\n]*)\n") do
    i = i + 1
    local key = lib.SETTING_ORDER[i] or "extra"
    entered[key] = value == KEEP and settings[key] or value
  end
  local cleaned, problem = lib.validate_settings(entered)
  if cleaned then
    cleaned.bridge_command, problem = lib.resolve_command(cleaned.bridge_command)
    if cleaned.bridge_command then
      lib.save_settings(cleaned)
      return
    end
  end
  lib.message(problem)
  for j, key in ipairs(lib.SETTING_ORDER) do current[j] = shown(entered[key] or "") end
end
