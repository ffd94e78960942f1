-- @noindex
-- AccompGen job runner for the ReaScripts: submits jobs to the bridge one at a time, follows their status files from
-- REAPER's defer loop, draws the progress window (Cancel, Esc or closing it cancels), notices a bridge that stopped
-- answering, and at the end hands what finished to the caller's `place` function and tells the user what happened.
-- Loaded with dofile() from the scripts' own folder; it returns a function taking the library.

return function(lib)
  local R = {}

  local POLL_S = 0.2 -- status files are read at most this often
  local PING_WAIT_S = 20 -- a bridge whose heartbeat stopped gets this long to answer a ping (a cold Python start on
  -- a slow disk takes seconds before the ping is even sent)

  local function active(job)
    return job.state == "waiting" or job.state == "submitting" or job.state == "queued" or job.state == "running"
  end

  --- Jobs made by `make(candidate, index)` (a job, or nil and why that candidate is skipped) for each candidate:
  -- returns the jobs and the lines naming what was skipped.
  function R.collect(candidates, make)
    local jobs, skipped = {}, {}
    for index, candidate in ipairs(candidates) do
      local job, problem = make(candidate, index)
      if job then jobs[#jobs + 1] = job else skipped[#skipped + 1] = problem end
    end
    return jobs, skipped
  end

  --- Run `run.jobs` ({label, file, start, length, position, origin, temp_file; seed and variations where they are
  -- not those of Settings: the seed set there, else a new random one, for every job of the run}) on the bridge
  -- with `run.settings`, writing into the recording path of `run.proj` (its media folder, or for a project never
  -- saved REAPER's default, as REAPER's own recordings); `run.place(jobs)` puts what finished into the project
  -- (also after Cancel) and returns how many it placed and lines naming what it could not; `run.placed` words
  -- that count ("inserted"); `run.problems` are lines to add to the final message (all there is to say when there
  -- is no job).
  function R.run(run)
    local jobs, settings, output_dir = run.jobs, run.settings, reaper.GetProjectPathEx(run.proj)
    if #jobs == 0 then
      lib.message(table.concat(run.problems, "\n"))
      return
    end
    local seed = settings.seed ~= "" and tonumber(settings.seed) or math.random(0, math.floor(lib.LIMITS.seed[2]))
    for _, job in ipairs(jobs) do
      job.seed, job.variations = job.seed or seed, job.variations or math.floor(tonumber(settings.variations))
    end
    local finished, cancelling, liveness, last_poll = false, false, nil, 0

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

    --- One `cancel` call for every job the bridge holds, started without waiting. A job still being submitted has
    -- no id yet: it stays "submitting" (its answer is awaited and it is cancelled then), unless `now` (the script is
    -- being stopped and cannot wait).
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

    local function start_submit(job)
      local request = {
        input_path = job.file, start_s = job.start, duration_s = job.length, seed = job.seed,
        cfg_scale = tonumber(settings.cfg_scale), temperature = tonumber(settings.temperature),
        variations = job.variations, output_dir = output_dir, bundle = lib.bundle_name(settings),
      }
      job.request_file = lib.work_file("request")
      local written, err = lib.write_file(job.request_file, lib.json_encode_object(request))
      local call
      if written then call, err = lib.start_call(settings, { "submit", "--request", job.request_file }) end
      if not call then
        job.state, job.message = "failed", err
        return
      end
      job.call, job.state, job.message = call, "submitting", "submitting"
    end

    local function follow_submit(job)
      local state, reply_or_message = lib.poll(job.call)
      if state == "running" then return end
      job.call = nil
      if state == "failed" then
        job.state, job.message = "failed", reply_or_message
        return
      end
      job.id, job.status_file = reply_or_message.job_id, reply_or_message.status_file
      job.state, job.message = "queued", "queued"
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
        local state, result = lib.poll(liveness)
        local stuck = reaper.time_precise() - liveness.started > PING_WAIT_S
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
          if call then liveness = call else fail_active(problem) end
          return
        end
      end
    end

    local function finish()
      finished = true
      gfx.quit()
      local placed, stranded = run.place(jobs) -- what finished, also when cancelled
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
      for _, problem in ipairs(run.problems or {}) do lines[#lines + 1] = problem end
      for _, line in ipairs(stranded) do lines[#lines + 1] = line end
      if cancelling then
        local kept = placed > 0 and (" The %d that had finished were %s."):format(placed, run.placed)
          or (" Nothing was %s."):format(run.placed)
        table.insert(lines, 1, ("Cancelled %d unfinished job(s)."):format(stopped) .. kept)
      elseif #lines > 0 and placed > 0 then
        table.insert(lines, 1, ("%d accompaniment(s) %s."):format(placed, run.placed))
      end
      if #lines > 0 then lib.message(table.concat(lines, "\n")) end
    end

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

    for _, job in ipairs(jobs) do
      job.state, job.fraction, job.message = "waiting", 0, "waiting"
    end
    reaper.atexit(function() -- also runs when the user stops the script from REAPER's toolbar
      if not finished then
        cancel_all(true)
        remove_temp_files()
      end
    end)
    lib.open_window(#jobs)
    step()
  end

  return R
end
