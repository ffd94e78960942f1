-- @description AccompGen: Generate accompaniment for selected items
-- @version 0.1.0
-- @author AccompGen
-- @about
--   Select sung vocal items and run this script: each goes to the AccompGen bridge, a progress window shows
--   every job (Cancel, Esc or closing it cancels them all), and when they are done a new track appears right
--   under each vocal track with the accompaniment, aligned to the item, every variation an alternate take.
--   Needs a running bridge (AccompGen: Start or check bridge) and the accompgen-bridge command (pip install
--   accompgen). Settings: AccompGen: Settings.
-- @provides
--   [nomain] accompgen_lib.lua
--   [main] AccompGen - Settings.lua
--   [main] AccompGen - Start or check bridge.lua
-- @changelog
--   First release.

local script_dir = select(2, reaper.get_action_context()):match("^(.*[/\\])")
local lib = dofile(script_dir .. "accompgen_lib.lua")

local POLL_S = 0.2 -- status files are read at most this often

local settings = lib.load_settings()
local jobs, problems = {}, {}
local finished = false

local function item_label(item, index)
  local _, name = reaper.GetSetMediaItemTakeInfo_String(reaper.GetActiveTake(item), "P_NAME", "", false)
  return name ~= "" and name or ("item %d"):format(index)
end

local function remove_temp_files()
  for _, job in ipairs(jobs) do
    if job.temp_file then
      os.remove(job.temp_file)
      job.temp_file = nil
    end
  end
end

local function cancel_running()
  for _, job in ipairs(jobs) do
    if job.id and (job.state == "queued" or job.state == "running") then
      lib.call_bridge(settings, { "cancel", job.id }, 5000)
      job.state = "cancelled"
    end
  end
end

--- One job per selected audio item; MIDI items and offline sources are skipped and reported.
local function collect_jobs()
  for i = 0, reaper.CountSelectedMediaItems(0) - 1 do
    local item = reaper.GetSelectedMediaItem(0, i)
    local label = reaper.GetActiveTake(item) and item_label(item, i + 1) or ("item %d"):format(i + 1)
    local region, render_reason, problem = lib.item_region(item)
    local temp_file
    if region and render_reason then
      temp_file, problem = lib.render_region(item)
      if temp_file then
        region.file, region.start = temp_file, 0
      else
        region, problem = nil, ("%s (it has %s)"):format(problem, render_reason)
      end
    end
    if region then
      jobs[#jobs + 1] = {
        item = item, track = reaper.GetMediaItem_Track(item), label = label, temp_file = temp_file,
        file = region.file, start = region.start, length = region.length, position = region.position,
        state = "submitting", fraction = 0,
      }
    else
      problems[#problems + 1] = ("%s skipped: %s"):format(label, problem)
    end
  end
end

local function submit(job, seed)
  local args = { "submit", job.file, "--start", ("%.6f"):format(job.start), "--duration", ("%.6f"):format(job.length),
    "--seed", tostring(seed), "--cfg-scale", settings.cfg_scale, "--temperature", settings.temperature,
    "--variations", settings.variations }
  local reply, err = lib.call_bridge(settings, args)
  if not reply then return false, err end
  job.id, job.status_file, job.seed, job.state = reply.job_id, reply.status_file, seed, "queued"
  return true
end

local function finish(cancelled)
  finished = true
  gfx.quit()
  local inserted = cancelled and 0 or lib.insert_accompaniments(jobs)
  remove_temp_files()
  local lines = {}
  for _, job in ipairs(jobs) do
    if job.state == "failed" then lines[#lines + 1] = ("%s failed: %s"):format(job.label, job.message or "") end
  end
  for _, problem in ipairs(problems) do lines[#lines + 1] = problem end
  if cancelled then table.insert(lines, 1, "Cancelled: nothing was inserted.") end
  if #lines > 0 then
    if inserted > 0 then table.insert(lines, 1, ("Inserted %d accompaniment(s)."):format(inserted)) end
    lib.message(table.concat(lines, "\n"))
  end
end

local last_poll = 0
local function poll()
  local now = reaper.time_precise()
  local ended = true
  if now - last_poll >= POLL_S then
    last_poll = now
    for _, job in ipairs(jobs) do
      if job.state == "queued" or job.state == "running" then
        local status = lib.read_status(job.status_file)
        if status then
          job.state, job.fraction = status.state, status.fraction or job.fraction
          job.outputs = status.outputs
          job.message = status.state == "running" and ("%s %d%%"):format(status.stage, math.floor(100 * job.fraction))
            or (status.error_message ~= lib.null and status.error_message or nil)
        end
      end
    end
  end
  for _, job in ipairs(jobs) do
    if job.state == "queued" or job.state == "running" then ended = false end
  end
  if lib.draw_window(jobs) == "cancel" then
    cancel_running()
    finish(true)
    return
  end
  if ended then
    finish(false)
    return
  end
  reaper.defer(poll)
end

local function main()
  if reaper.CountSelectedMediaItems(0) == 0 then
    lib.message("Select one or more vocal items first.")
    return
  end
  collect_jobs()
  if #jobs == 0 then
    remove_temp_files()
    lib.message(table.concat(problems, "\n"))
    return
  end
  local seed = settings.seed ~= "" and tonumber(settings.seed) or math.random(0, 2 ^ 31 - 1)
  for _, job in ipairs(jobs) do
    local ok, err = submit(job, seed)
    if not ok then
      cancel_running()
      remove_temp_files()
      lib.message("The bridge did not take the job: " .. err
        .. "\n\nIs it running? Use AccompGen: Start or check bridge.")
      return
    end
  end
  reaper.atexit(function() -- also runs when the user stops the script from REAPER's toolbar
    if not finished then
      cancel_running()
      remove_temp_files()
    end
  end)
  lib.open_window(#jobs)
  poll()
end

main()
