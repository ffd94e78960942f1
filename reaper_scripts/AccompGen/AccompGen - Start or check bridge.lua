-- @description AccompGen: Start or check bridge
-- @version 0.5.1
-- @author AccompGen
-- @noindex
-- @about
--   Pings the AccompGen bridge. If none is running, starts one in the background serving every bundle it finds
--   (installed with AccompGen, and in its state folder's bundles/) and the bundle folder of AccompGen: Settings,
--   waits for it to answer, and says clearly what is missing when it cannot. REAPER stays responsive meanwhile.
-- @changelog
--   The bridge serves every bundle found besides the one chosen, so choosing another needs no restart; says when
--   a running bridge does not serve the chosen bundle.

local script_dir = select(2, reaper.get_action_context()):match("^(.*[/\\])")
local lib = dofile(script_dir .. "accompgen_lib.lua")

local START_WAIT_S = 30
local PING_EVERY_S = 1

local settings = lib.load_settings()
local started_at, ping, last_ping_at

local function say(text)
  lib.message(text)
end

--- The chosen folder is served first (the default), then every bundle the bridge finds.
local function serve_line()
  local chosen = ""
  if settings.bundle ~= "" then
    chosen = (" --bundle %s --found"):format(lib.quote(settings.bundle) or settings.bundle)
  end
  return ("%s serve%s --device %s"):format(settings.bridge_command, chosen, settings.device)
end

--- "chorales (chorales, int8), my choir (...)" from a ping's reply.
local function served(reply)
  local names = {}
  for _, bundle in ipairs(reply.bundles or {}) do
    names[#names + 1] = ("%s (%s)"):format(bundle.name, bundle.summary)
  end
  return table.concat(names, ", ")
end

--- nil, or why the running bridge cannot generate with the bundle chosen in Settings.
local function chosen_not_served(reply)
  local name = lib.bundle_name(settings)
  if not name then return nil end
  local bundle = lib.served_as_chosen(reply, settings)
  if bundle and bundle.summary:find("^cannot be served") then
    return ("It cannot generate with %s, the bundle chosen in AccompGen: Settings: %s"):format(name, bundle.summary)
  elseif not bundle then
    return ("It does not serve %s from %s, the bundle chosen in AccompGen: Settings: run AccompGen: Stop bridge, "
      .. "then this action again."):format(name, settings.bundle)
  end
  return nil
end

--- After starting the bridge: ping every second until it answers or START_WAIT_S have passed.
local function wait_for_bridge()
  local state, reply = "running", nil
  if ping then state, reply = lib.poll(ping) end
  if state == "done" then
    say(("Started the AccompGen bridge %s, serving %s."):format(reply.version, served(reply)))
    return
  end
  if reaper.time_precise() - started_at > START_WAIT_S then
    say(("The bridge did not answer within %d s. AccompGen: Show bridge log shows why, or run this in a "
      .. "terminal:\n\n%s"):format(START_WAIT_S, serve_line()))
    return
  end
  if state == "failed" then ping = nil end -- it has answered: its reply file is gone, none is left behind
  -- a new ping only once the last one has answered, at most one per PING_EVERY_S
  if not ping and (not last_ping_at or reaper.time_precise() - last_ping_at > PING_EVERY_S) then
    ping, last_ping_at = lib.start_call(settings, { "ping", "--timeout", "1" }), reaper.time_precise()
  end
  reaper.defer(wait_for_bridge)
end

local function start_bridge()
  if settings.bundle ~= "" and not reaper.file_exists(settings.bundle .. "/manifest.yaml") then
    say(("The bundle folder %s holds no manifest.yaml: point Settings to a folder written by "
      .. "`accompgen export`."):format(settings.bundle))
    return
  end
  if not lib.quote(settings.bundle) then
    say("The bundle folder's path holds \", ' and ` at once: REAPER cannot pass it on. Rename the folder.")
    return
  end
  -- -1: do not wait (-2 on Windows: do not wait, minimised, so its console window stays out of the way); the
  -- bridge keeps running after this script ends
  local line = serve_line()
  if reaper.ExecProcess(line, lib.is_windows() and -2 or -1) == nil then
    say(("REAPER could not start the bridge:\n\n%s\n\nCheck the bridge command in AccompGen: Settings."):format(line))
    return
  end
  started_at = reaper.time_precise()
  wait_for_bridge()
end

--- The first ping: an answer means a bridge runs; a bridge that cannot load its bundle says why.
local function first_answer()
  local state, reply_or_message, reply = lib.poll(ping)
  if state == "running" then
    reaper.defer(first_answer)
  elseif state == "done" then
    local text = ("The AccompGen bridge %s is running (port %d), serving %s."):format(reply_or_message.version,
      math.floor(reply_or_message.port), served(reply_or_message))
    local problem = chosen_not_served(reply_or_message)
    say(problem and text .. "\n\n" .. problem or text)
  elseif reply and reply.error == "internal" then
    say("The AccompGen bridge is running but cannot generate:\n\n" .. reply_or_message)
  else
    ping = nil
    start_bridge()
  end
end

local problem
ping, problem = lib.start_bridge_call(settings, { "ping", "--timeout", "2" })
if not ping then
  say(problem)
  return
end
first_answer()
