-- @description AccompGen: Choose bundle and device
-- @version 0.5.1
-- @author AccompGen
-- @noindex
-- @about
--   Lists the bundles the bridge finds (the ones installed with AccompGen and those in its state folder's
--   bundles/), or another folder you pick, then the devices this computer can run them on (auto, CUDA, TensorRT,
--   CPU). Generating asks for the bundle chosen; a bridge started by AccompGen: Start or check bridge serves it
--   beside every bundle it finds, so switching between those needs no restart (another device does).
-- @changelog
--   Switching bundles needs no restart when the running bridge serves the one chosen: this says whether it does.

local script_dir = select(2, reaper.get_action_context()):match("^(.*[/\\])")
local lib = dofile(script_dir .. "accompgen_lib.lua")

local OTHER = "Other folder (pick its manifest.yaml)..."

--- Show a popup menu of `entries` (the one equal to `current` checked); returns the entry chosen or nil.
local function choose(entries, current)
  local shown = {}
  for i, entry in ipairs(entries) do
    -- "#" greys an entry out, "!" checks it; "|" separates entries, so none may hold one
    local text = entry.label:gsub("|", "/")
    shown[i] = (entry.disabled and "#" or "") .. (entry.value == current and "!" or "") .. text
  end
  gfx.init("AccompGen", 0, 0)
  local index = gfx.showmenu(table.concat(shown, "|"))
  gfx.quit()
  return entries[index] and entries[index].value
end

local function choose_folder()
  local ok, file = reaper.GetUserFileNameForRead("", "The bundle's manifest.yaml", "yaml")
  if not ok then return nil end
  local folder = file:match("^(.*)[/\\]manifest%.yaml$")
  if not folder then lib.message(("%s is not a bundle's manifest.yaml."):format(file)) end
  return folder
end

local settings = lib.load_settings()
local call, problem = lib.start_bridge_call(settings, { "bundles" })
if not call then
  lib.message(problem)
  return
end
lib.after_call(call, function(state, reply)
  if state ~= "done" then
    lib.message(reply)
    return
  end
  local entries = {}
  for _, found in ipairs(reply.bundles) do
    local broken = found.summary:find("^cannot be served") ~= nil
    entries[#entries + 1] = { label = ("%s (%s)"):format(found.name, found.summary), value = found.path,
      disabled = broken }
  end
  entries[#entries + 1] = { label = OTHER, value = OTHER }
  local bundle = choose(entries, settings.bundle)
  if bundle == OTHER then bundle = choose_folder() end
  if not bundle then return end
  local devices = {}
  for _, device in ipairs(reply.devices) do devices[#devices + 1] = { label = device, value = device } end
  local device = choose(devices, settings.device)
  if not device then return end
  lib.save_settings({ bundle = bundle, device = device })
  local chosen = { bundle = bundle }
  local name = lib.bundle_name(chosen)
  local ping = lib.start_call(settings, { "ping", "--timeout", "2" })
  if not ping then
    lib.message(("AccompGen will generate with %s on %s."):format(name, device))
    return
  end
  lib.after_call(ping, function(ping_state, running)
    local text = ("AccompGen will generate with %s on %s."):format(name, device)
    if ping_state ~= "done" then
      lib.message(text .. " AccompGen: Start or check bridge starts a bridge with it.")
    elseif lib.served_as_chosen(running, chosen) and device == running.device then
      lib.message(text .. " The running bridge serves it already.")
    else
      lib.message(text .. " The running bridge was started with other bundles or another device: run AccompGen: "
        .. "Stop bridge, then AccompGen: Start or check bridge.")
    end
  end)
end)
