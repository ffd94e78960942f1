-- @description AccompGen: Start or check bridge
-- @version 0.1.0
-- @author AccompGen
-- @about
--   Pings the AccompGen bridge. If none is running, starts one in the background with the bundle folder from
--   AccompGen: Settings, waits for it to answer, and says clearly what is missing when it cannot.
-- @provides
--   [nomain] accompgen_lib.lua
-- @changelog
--   First release.

local script_dir = select(2, reaper.get_action_context()):match("^(.*[/\\])")
local lib = dofile(script_dir .. "accompgen_lib.lua")

local START_WAIT_S = 20

local settings = lib.load_settings()

local reply, err = lib.call_bridge(settings, { "ping", "--timeout", "2" }, 10000)
if reply then
  lib.message(("The AccompGen bridge %s is running (port %d)."):format(reply.version, math.floor(reply.port)))
  return
end
if err:find("was not found") then
  lib.message(err)
  return
end
if settings.bundle == "" then
  lib.message("No bridge is running, and no bundle folder is set to start one with.\n\n"
    .. "Set it in AccompGen: Settings (a folder written by `accompgen export`).")
  return
end
if not reaper.file_exists(settings.bundle .. "/manifest.yaml") then
  lib.message(("The bundle folder %s holds no manifest.yaml: point Settings to a folder written by "
    .. "`accompgen export`."):format(settings.bundle))
  return
end

-- -1: do not wait; the bridge keeps running after this script ends
reaper.ExecProcess(lib.command_line(settings.bridge_command, { "serve", "--bundle", settings.bundle }), -1)

local started = reaper.time_precise()
local function wait_for_bridge()
  local answer = lib.call_bridge(settings, { "ping", "--timeout", "1" }, 5000)
  if answer then
    lib.message(("Started the AccompGen bridge %s with %s."):format(answer.version, settings.bundle))
  elseif reaper.time_precise() - started > START_WAIT_S then
    lib.message(("The bridge did not answer within %d s. Run this in a terminal to see why:\n\n%s"):format(
      START_WAIT_S, lib.command_line(settings.bridge_command, { "serve", "--bundle", settings.bundle })))
  else
    reaper.defer(wait_for_bridge)
  end
end
wait_for_bridge()
