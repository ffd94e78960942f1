-- @description AccompGen: Generate accompaniment for selected items
-- @version 0.3.0
-- @author AccompGen
-- @about
--   Select sung vocal items and run this script: each goes to the AccompGen bridge, a progress window shows
--   every job (Cancel, Esc or closing it cancels them all), and when they are done a new track appears right
--   under each vocal track with the accompaniment, aligned to the item, every variation an alternate take.
--
--   The accompaniment files are written into the project's media folder, so the project keeps them when it is
--   moved or archived. Takes whose sound differs from their file (FX, pitch, envelopes, looping, formats the
--   bridge cannot read) are rendered first, so the bridge hears what you hear.
--
--   Needs a running bridge (AccompGen: Start or check bridge) and the accompgen-bridge command (pip install
--   accompgen). Settings: AccompGen: Settings.
-- @provides
--   [nomain] accompgen_lib.lua
--   [nomain] accompgen_limits.lua
--   [main] AccompGen - Settings.lua
--   [main] AccompGen - Start or check bridge.lua
-- @changelog
--   CFG scale and temperature are blank by default: the bundle's own settings, tuned for its model, apply
--   unless you set them.

local script_dir = select(2, reaper.get_action_context()):match("^(.*[/\\])")
local lib = dofile(script_dir .. "accompgen_lib.lua")

local POLL_S = 0.2 -- status files are read at most this often
local PING_WAIT_S = 20 -- a bridge whose heartbeat stopped gets this long to answer a ping (a cold Python start on a
-- slow disk takes seconds before the ping is even sent)

local settings = lib.load_settings()
local proj = reaper.EnumProjects(-1) -- the project the jobs belong to, whichever tab is in front later
local jobs, problems = {}, {}
local output_dir -- the project's recording path: its media folder, or for a project never saved REAPER's default
local project_file -- the file the tab holds now: another song opened into it later keeps the same ReaProject*
local seed
local finished = false
local cancelling = false -- Cancel pressed: waiting for submits in flight to answer, so their jobs can be cancelled
local liveness -- a ping started because a heartbeat went stale: {call, job}

local function item_label(item, index)
  local _, name = reaper.GetSetMediaItemTakeInfo_String(reaper.GetActiveTake(item), "P_NAME", "", false)
  return name ~= "" and name or ("item %d"):format(index)
end

local function track_label(track)
  local _, name = reaper.GetSetMediaTrackInfo_String(track, "P_NAME", "", false)
  return name ~= "" and name or "Vocals"
end

local function remove_temp_files()
  for _, job in ipairs(jobs) do
    if job.temp_file then
      lib.remove_render(job.temp_file)
      job.temp_file = nil
    end
    if job.request_file then
      os.remove(job.request_file)
      job.request_file = nil
    end
  end
end

local function active(job)
  return job.state == "waiting" or job.state == "submitting" or job.state == "queued" or job.state == "running"
end

--- One `cancel` call for every job the bridge holds, started without waiting. A job still being submitted has no
-- id yet: it stays "submitting" (the caller waits for its answer and cancels it then), unless `now` (the script
-- is being stopped and cannot wait).
local function cancel_all(now)
  local ids = { "cancel" }
  for _, job in ipairs(jobs) do
    if job.id and (job.state == "queued" or job.state == "running") then ids[#ids + 1] = job.id end
  end
  for _, job in ipairs(jobs) do
    if active(job) and (now or job.state ~= "submitting") then job.state, job.message = "cancelled", "cancelled" end
  end
  if #ids > 1 then lib.start_call(settings, ids) end
end

local function submitting()
  for _, job in ipairs(jobs) do
    if job.state == "submitting" then return true end
  end
  return false
end

--- One job per selected audio item; MIDI items and offline sources are skipped and reported.
local function collect_jobs()
  for i = 0, reaper.CountSelectedMediaItems(proj) - 1 do
    local item = reaper.GetSelectedMediaItem(proj, i)
    local label = reaper.GetActiveTake(item) and item_label(item, i + 1) or ("item %d"):format(i + 1)
    local region, render_reason, problem = lib.item_region(item)
    local temp_file
    if region and render_reason then
      temp_file, problem = lib.render_region(proj, item)
      if temp_file then
        region.file, region.start = temp_file, 0
      else
        region, problem = nil, ("%s (it has %s)"):format(problem, render_reason)
      end
    end
    if region then
      local track = reaper.GetMediaItem_Track(item)
      jobs[#jobs + 1] = {
        origin = { proj = proj, file = project_file, guid = lib.item_guid(item) },
        track_name = track_label(track), label = label, temp_file = temp_file,
        file = region.file, start = region.start, length = region.length, position = region.position,
        state = "waiting", fraction = 0, message = "waiting",
      }
    else
      problems[#problems + 1] = ("%s skipped: %s"):format(label, problem)
    end
  end
end

local function start_submit(job)
  local request = {
    input_path = job.file, start_s = job.start, duration_s = job.length, seed = seed,
    cfg_scale = tonumber(settings.cfg_scale), temperature = tonumber(settings.temperature),
    variations = math.floor(tonumber(settings.variations)), output_dir = output_dir,
  }
  job.request_file = lib.work_file("request")
  local written, err = lib.write_file(job.request_file, lib.json_encode_object(request))
  local call
  if written then call, err = lib.start_call(settings, { "submit", "--request", job.request_file }) end
  if not call then
    job.state, job.message = "failed", err
    return
  end
  job.call, job.state, job.message, job.seed = call, "submitting", "submitting", seed
end

local function follow_submit(job)
  local state, reply_or_message = lib.poll(job.call)
  if state == "running" then return end
  job.call = nil
  if state == "failed" then
    job.state, job.message = "failed", reply_or_message
    return
  end
  job.id, job.status_file, job.state, job.message = reply_or_message.job_id, reply_or_message.status_file, "queued", "queued"
  if cancelling then cancel_all() end -- submitted after Cancel was pressed: cancel it now it has an id
end

local function follow_status(job)
  local status = lib.read_json(job.status_file)
  if type(status) ~= "table" then return end
  job.state, job.fraction = status.state, status.fraction or job.fraction
  job.outputs, job.heartbeat = status.outputs, tonumber(status.heartbeat)
  if status.state == "running" then
    job.message = ("%s %d%%"):format(status.stage, math.floor(100 * job.fraction))
  elseif status.state == "failed" then
    job.message = status.error_message ~= lib.null and status.error_message or "failed"
  else
    job.message = status.state
  end
end

--- Every job still waiting on the bridge ends with this reason.
local function fail_active(reason)
  for _, job in ipairs(jobs) do
    if active(job) then
      job.state, job.message = "failed", ("the bridge stopped answering%s; start it again with AccompGen: "
        .. "Start or check bridge"):format(reason and (" (" .. reason .. ")") or "")
    end
  end
end

--- A job whose status file has not been rewritten for a while: ask the bridge whether it is still there.
local function check_liveness()
  if liveness then
    local state, result = lib.poll(liveness.call)
    local stuck = reaper.time_precise() - liveness.call.started > PING_WAIT_S
    if state == "done" then
      liveness = nil
    elseif state == "failed" or stuck then
      fail_active(state == "failed" and result or nil)
      liveness = nil
    end
    return
  end
  for _, job in ipairs(jobs) do
    if (job.state == "queued" or job.state == "running") and job.heartbeat
      and os.time() - job.heartbeat > lib.HEARTBEAT_STALE_S then
      local call, problem = lib.start_call(settings, { "ping", "--timeout", "2" })
      if call then liveness = { call = call } else fail_active(problem) end
      return
    end
  end
end

local function finish()
  finished = true
  gfx.quit()
  local inserted, stranded = lib.insert_accompaniments(proj, jobs) -- what finished, also when cancelled
  remove_temp_files()
  local lines, not_listening, stopped = {}, false, 0
  for _, job in ipairs(jobs) do
    if job.state == "failed" then
      lines[#lines + 1] = ("%s failed: %s"):format(job.label, job.message or "")
      not_listening = not_listening or (job.message or ""):find("no bridge is listening", 1, true) ~= nil
    elseif job.state == "cancelled" then
      stopped = stopped + 1
    end
  end
  if not_listening then lines[#lines + 1] = "Start the bridge with AccompGen: Start or check bridge." end
  for _, problem in ipairs(problems) do lines[#lines + 1] = problem end
  for _, line in ipairs(stranded) do lines[#lines + 1] = line end
  if cancelling then
    table.insert(lines, 1, ("Cancelled %d unfinished job(s)."):format(stopped)
      .. (inserted > 0 and (" The %d that had finished were inserted."):format(inserted) or " Nothing was inserted."))
  elseif #lines > 0 and inserted > 0 then
    table.insert(lines, 1, ("Inserted %d accompaniment(s)."):format(inserted))
  end
  if #lines > 0 then lib.message(table.concat(lines, "\n")) end
end

local last_poll = 0
local function poll_jobs()
  local in_flight = false
  for _, job in ipairs(jobs) do
    if job.state == "submitting" then
      follow_submit(job)
      in_flight = in_flight or job.state == "submitting"
    elseif job.state == "queued" or job.state == "running" then
      follow_status(job)
    end
  end
  if not in_flight and not cancelling then -- one submit at a time: the bridge answers each in milliseconds
    for _, job in ipairs(jobs) do
      if job.state == "waiting" then
        start_submit(job)
        break
      end
    end
  end
  check_liveness()
end

local function step()
  local now = reaper.time_precise()
  if now - last_poll >= POLL_S then
    last_poll = now
    poll_jobs()
  end
  if lib.draw_window(jobs) == "cancel" and not cancelling then
    cancelling = true
    cancel_all()
  end
  if cancelling and not submitting() then
    finish()
    return
  end
  for _, job in ipairs(jobs) do
    if active(job) then
      reaper.defer(step)
      return
    end
  end
  finish()
end

local function main()
  local unsupported = lib.unsupported_reaper()
  if unsupported then
    lib.message(unsupported)
    return
  end
  if reaper.CountSelectedMediaItems(proj) == 0 then
    lib.message("Select one or more vocal items first.")
    return
  end
  local resolved, problem = lib.resolve_command(settings.bridge_command)
  if not resolved then
    lib.message(problem)
    return
  end
  settings.bridge_command = resolved
  output_dir, project_file = reaper.GetProjectPathEx(proj), lib.project_file(proj)
  collect_jobs()
  if #jobs == 0 then
    remove_temp_files()
    lib.message(table.concat(problems, "\n"))
    return
  end
  seed = settings.seed ~= "" and tonumber(settings.seed) or math.random(0, math.floor(lib.LIMITS.seed[2]))
  reaper.atexit(function() -- also runs when the user stops the script from REAPER's toolbar
    if not finished then
      cancel_all(true)
      remove_temp_files()
    end
  end)
  lib.open_window(#jobs)
  step()
end

main()
