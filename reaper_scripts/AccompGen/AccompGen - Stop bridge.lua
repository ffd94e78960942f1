-- @description AccompGen: Stop bridge
-- @version 0.4.0
-- @author AccompGen
-- @noindex
-- @about
--   Stops the AccompGen bridge that serves this computer (only the user who started it can). A job it was
--   running is queued again and runs when the bridge is started next.
-- @changelog
--   New.

local script_dir = select(2, reaper.get_action_context()):match("^(.*[/\\])")
local lib = dofile(script_dir .. "accompgen_lib.lua")

local settings = lib.load_settings()
local call, problem = lib.start_bridge_call(settings, { "stop", "--timeout", "20" })
if not call then
  lib.message(problem)
  return
end
lib.after_call(call, function(state, reply_or_message)
  if state == "done" then
    lib.message("The AccompGen bridge has stopped.")
  elseif reply_or_message:find("no bridge is listening", 1, true) then
    lib.message("No AccompGen bridge is running.")
  else
    lib.message("The AccompGen bridge could not be stopped: " .. reply_or_message)
  end
end)
