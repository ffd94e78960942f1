-- @description AccompGen: Show bridge log
-- @version 0.4.0
-- @author AccompGen
-- @noindex
-- @about
--   Shows the end of the AccompGen bridge's log in REAPER's console, with where the whole log file is: what a
--   bridge started from REAPER did, and why it stopped or failed.
-- @changelog
--   New.

local script_dir = select(2, reaper.get_action_context()):match("^(.*[/\\])")
local lib = dofile(script_dir .. "accompgen_lib.lua")

local LINES = 60

local settings = lib.load_settings()
local call, problem = lib.start_bridge_call(settings, { "log", "--lines", tostring(LINES) })
if not call then
  lib.message(problem)
  return
end
lib.after_call(call, function(state, reply_or_message)
  if state ~= "done" then
    lib.message(reply_or_message)
    return
  end
  reaper.ShowConsoleMsg(("AccompGen bridge log, the last %d lines of %s:\n\n%s\n\n"):format(
    #reply_or_message.lines, reply_or_message.log_file, table.concat(reply_or_message.lines, "\n")))
end)
