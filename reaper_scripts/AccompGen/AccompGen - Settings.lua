-- @description AccompGen: Settings
-- @version 0.1.0
-- @author AccompGen
-- @about
--   The bridge command (accompgen-bridge, or its full path), the bundle the bridge serves, CFG scale,
--   temperature, seed (blank = a new random one each run) and variations. Stored in REAPER's ExtState.
-- @provides
--   [nomain] accompgen_lib.lua
-- @changelog
--   First release.

local script_dir = select(2, reaper.get_action_context()):match("^(.*[/\\])")
local lib = dofile(script_dir .. "accompgen_lib.lua")

local settings = lib.load_settings()
local current = {}
for i, key in ipairs(lib.SETTING_ORDER) do current[i] = settings[key] end

while true do
  local ok, answer = reaper.GetUserInputs("AccompGen settings", #lib.SETTING_ORDER,
    lib.CAPTIONS .. ",extrawidth=220", table.concat(current, ","))
  if not ok then return end
  local entered, i = {}, 0
  for value in (answer .. ","):gmatch("([^,]*),") do
    i = i + 1
    entered[lib.SETTING_ORDER[i] or "extra"] = value
  end
  local cleaned, problem = lib.validate_settings(entered)
  if cleaned then
    lib.save_settings(cleaned)
    return
  end
  lib.message(problem)
  for j, key in ipairs(lib.SETTING_ORDER) do current[j] = entered[key] or "" end
end
