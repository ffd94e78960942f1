-- @description AccompGen: Generate accompaniment for selected items
-- @version 0.5.1
-- @author AccompGen
-- @about
--   Select sung vocal items and run this script: each goes to the AccompGen bridge, a progress window shows
--   every job (Cancel, Esc or closing it cancels what has not finished), and when they are done a new track appears
--   beside each vocal track, at its folder level, with the accompaniment aligned to the item, every variation an
--   alternate take. AccompGen: Regenerate this take adds another variation to an accompaniment item.
--
--   The accompaniment files are written into the project's recording path, as REAPER's own recordings are.
--   Takes whose sound differs from their file (track and take FX such as pitch correction, pitch, envelopes,
--   looping, formats the bridge cannot read) are rendered first, so the bridge hears what you hear.
--
--   Runs on REAPER 6 and 7. Needs a running bridge (AccompGen: Start or check bridge) and the accompgen-bridge
--   command (pip install accompgen). Settings: AccompGen: Settings.
-- @provides
--   [nomain] accompgen_lib.lua
--   [nomain] accompgen_jobs.lua
--   [nomain] accompgen_limits.lua
--   [main] AccompGen - Settings.lua
--   [main] AccompGen - Start or check bridge.lua
--   [main] AccompGen - Stop bridge.lua
--   [main] AccompGen - Show bridge log.lua
--   [main] AccompGen - Regenerate this take.lua
--   [main] AccompGen - Choose bundle and device.lua
--   [main] AccompGen - Generate accompaniment for time selection.lua
-- @changelog
--   A bundle is the one chosen only when its folder is the same, not its name alone, and a restart is asked for
--   when the running bridge uses another device; a chosen bundle that cannot be served says why.
--   Several models side by side: the bridge started by AccompGen: Start or check bridge serves every bundle it
--   finds besides the chosen one, and each generation asks for the bundle chosen in AccompGen: Choose bundle and
--   device or Settings, so switching needs no restart.

local script_dir = select(2, reaper.get_action_context()):match("^(.*[/\\])")
local lib = dofile(script_dir .. "accompgen_lib.lua")

local runner = dofile(script_dir .. "accompgen_jobs.lua")(lib)

local function main()
  local settings, origin = lib.load_settings(), lib.origin() -- the song the jobs belong to, whatever comes in front
  local proj = origin.proj
  local ready, problem = lib.prepare(settings)
  if ready and reaper.CountSelectedMediaItems(proj) == 0 then problem = "Select one or more vocal items first." end
  if problem then
    lib.message(problem)
    return
  end
  local jobs, problems = runner.collect(lib.selected_items(proj), function(item, index)
    return lib.job_for_item(origin, item, index)
  end)
  runner.run({
    settings = settings, proj = proj, jobs = jobs, problems = problems, placed = "inserted",
    place = function(finished) return lib.insert_accompaniments(proj, finished) end,
  })
end

main()
