-- @description AccompGen: Generate accompaniment for time selection
-- @version 0.4.0
-- @author AccompGen
-- @noindex
-- @about
--   Select the vocal track(s) and make a time selection: each track's time selection is rendered as you hear it
--   (every item on it, the comped lanes, take and track FX such as pitch correction) and accompanied as one piece,
--   on a new track beside it, one item spanning the time selection.
-- @changelog
--   New.

local script_dir = select(2, reaper.get_action_context()):match("^(.*[/\\])")
local lib = dofile(script_dir .. "accompgen_lib.lua")
local runner = dofile(script_dir .. "accompgen_jobs.lua")(lib)

local function main()
  local settings, origin = lib.load_settings(), lib.origin()
  local proj = origin.proj
  local start, stop = reaper.GetSet_LoopTimeRange2(proj, false, false, 0, 0, false)
  local ready, problem = lib.prepare(settings)
  if ready and stop <= start then problem = "Make a time selection over the vocal first." end
  if ready and reaper.CountSelectedTracks(proj) == 0 then problem = "Select the vocal track first." end
  if problem then
    lib.message(problem)
    return
  end
  local jobs, problems = runner.collect(lib.selected_tracks(proj), function(track)
    return lib.job_for_time_selection(origin, track, start, stop)
  end)
  runner.run({
    settings = settings, proj = proj, jobs = jobs, problems = problems, placed = "inserted",
    place = function(finished) return lib.insert_accompaniments(proj, finished) end,
  })
end

main()
