-- @description AccompGen: Generate accompaniment for selected items
-- @version 0.4.0
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
--   REAPER 6 and 7.0-7.17 supported (the track was inserted with a function only 7.18 has).
--   Track FX (pitch correction) and take pitch and mute envelopes are rendered, so the bridge hears what you hear.
--   The new track sits beside the vocal at its folder level, with your default track settings.
--   Nothing is inserted into another song opened into the same tab, or when the vocal item was deleted: the message
--   names the files.
--   Cancel also stops jobs still being submitted, and keeps the jobs that had finished.
--   Unsaved projects: files go to REAPER's recording path, not a folder purged after a week.
--   New actions: Generate accompaniment for time selection (a comped vocal as heard), Regenerate this take, Choose
--   bundle and device, Stop bridge, Show bridge log.

local script_dir = select(2, reaper.get_action_context()):match("^(.*[/\\])")
local lib = dofile(script_dir .. "accompgen_lib.lua")

local runner = dofile(script_dir .. "accompgen_jobs.lua")(lib)

local function main()
  local settings = lib.load_settings()
  local proj = reaper.EnumProjects(-1) -- the project the jobs belong to, whichever tab is in front later
  local ready, problem = lib.prepare(settings)
  if ready and reaper.CountSelectedMediaItems(proj) == 0 then problem = "Select one or more vocal items first." end
  if problem then
    lib.message(problem)
    return
  end
  -- the file the tab holds now: another song opened into it later keeps the same ReaProject*
  local origin, items = { proj = proj, file = lib.project_file(proj) }, {}
  for i = 0, reaper.CountSelectedMediaItems(proj) - 1 do items[#items + 1] = reaper.GetSelectedMediaItem(proj, i) end
  local seed = lib.first_seed(settings)
  local jobs, problems = runner.collect(items, function(item, index)
    local job, skipped = lib.job_for_item(origin, item, index)
    if job then job.seed, job.variations = seed, math.floor(tonumber(settings.variations)) end
    return job, skipped
  end)
  runner.run({
    settings = settings, jobs = jobs, problems = problems, placed = "inserted",
    proj = proj,
    place = function(finished) return lib.insert_accompaniments(proj, finished) end,
  })
end

main()
