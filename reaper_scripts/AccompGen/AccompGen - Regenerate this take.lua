-- @description AccompGen: Regenerate this take
-- @version 0.4.0
-- @author AccompGen
-- @noindex
-- @about
--   Select accompaniment items AccompGen made and run this script: each gets a new variation, from the vocal item
--   as it is now, added as a new take of the same item (the earlier takes stay, to compare and choose).
-- @changelog
--   New.

local script_dir = select(2, reaper.get_action_context()):match("^(.*[/\\])")
local lib = dofile(script_dir .. "accompgen_lib.lua")
local runner = dofile(script_dir .. "accompgen_jobs.lua")(lib)

--- A seed not used by the item's takes: the next after the set seed for each take made, else a random one.
local function new_seed(settings, item)
  if settings.seed == "" then return math.random(0, math.floor(lib.LIMITS.seed[2])) end
  return (tonumber(settings.seed) + reaper.CountTakes(item)) % (math.floor(lib.LIMITS.seed[2]) + 1)
end

local function main()
  local settings, origin = lib.load_settings(), lib.origin()
  local proj = origin.proj
  local ready, problem = lib.prepare(settings)
  if ready and reaper.CountSelectedMediaItems(proj) == 0 then
    problem = "Select one or more accompaniment items AccompGen made first."
  end
  if problem then
    lib.message(problem)
    return
  end
  local jobs, problems = runner.collect(lib.selected_items(proj), function(item, index)
    local _, vocal_guid = reaper.GetSetMediaItemInfo_String(item, lib.VOCAL_KEY, "", false)
    if vocal_guid == "" then
      return nil, ("item %d skipped: AccompGen did not make it (select an accompaniment item)"):format(index)
    elseif vocal_guid:sub(1, #lib.TIME_SELECTION_MARK) == lib.TIME_SELECTION_MARK then
      return nil, ("item %d skipped: it accompanies a time selection; run AccompGen: Generate accompaniment for "
        .. "time selection again"):format(index)
    end
    local vocal = lib.find_item(proj, vocal_guid)
    if not vocal then return nil, ("item %d skipped: the vocal item it accompanies was deleted"):format(index) end
    local job, skipped = lib.job_for_item(origin, vocal, index)
    if job then job.target, job.seed, job.variations = lib.item_guid(item), new_seed(settings, item), 1 end
    return job, skipped
  end)
  runner.run({
    settings = settings, proj = proj, jobs = jobs, problems = problems, placed = "added as new takes",
    place = function(finished) return lib.add_variations(proj, finished) end,
  })
end

main()
