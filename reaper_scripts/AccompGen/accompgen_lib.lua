-- AccompGen shared library for the ReaScripts: settings, bridge calls, item regions, JSON, the progress window.
-- Loaded with dofile() from the scripts' own folder. REAPER's Lua has no sockets, so every call to the bridge
-- runs the `accompgen-bridge` command line through reaper.ExecProcess (quick calls only: it blocks the UI),
-- and running jobs are followed by reading their status files from a reaper.defer loop.

local M = {}

M.SECTION = "AccompGen"
M.DEFAULTS = {
  bridge_command = "accompgen-bridge",
  bundle = "",
  cfg_scale = "3.0",
  temperature = "0.9",
  seed = "",
  variations = "1",
}
M.SETTING_ORDER = { "bridge_command", "bundle", "cfg_scale", "temperature", "seed", "variations" }
M.CAPTIONS = "Bridge command,Bundle folder (for Start bridge),CFG scale,Temperature,Seed (blank = random),Variations"

-- REAPER action ids used by the scripts.
M.CMD_RENDER_TO_NEW_TAKE = 40601 -- Item: Render items to new take
M.CMD_DELETE_ACTIVE_TAKE = 40129 -- Take: Delete active take from items

---------------------------------------------------------------------------------------------------------------
-- JSON (the bridge prints one object per call; status files hold one object)

local function json_error(text, pos, what)
  error(("bad JSON at %d: %s in %q"):format(pos, what, text:sub(math.max(1, pos - 10), pos + 10)), 0)
end

local escapes = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local decode_value

local function skip(text, pos)
  return text:find("[^ \t\r\n]", pos) or #text + 1
end

local function decode_string(text, pos)
  local parts, i = {}, pos + 1
  while true do
    local c = text:sub(i, i)
    if c == "" then json_error(text, i, "unterminated string") end
    if c == '"' then return table.concat(parts), i + 1 end
    if c == "\\" then
      local e = text:sub(i + 1, i + 1)
      if e == "u" then
        local code = tonumber(text:sub(i + 2, i + 5), 16) or json_error(text, i, "bad \\u escape")
        if code >= 0xD800 and code <= 0xDBFF and text:sub(i + 6, i + 7) == "\\u" then -- a surrogate pair
          local low = tonumber(text:sub(i + 8, i + 11), 16) or json_error(text, i, "bad surrogate")
          code = 0x10000 + (code - 0xD800) * 0x400 + (low - 0xDC00)
          i = i + 6
        end
        parts[#parts + 1] = utf8.char(code)
        i = i + 6
      else
        parts[#parts + 1] = escapes[e] or json_error(text, i, "bad escape")
        i = i + 2
      end
    else
      local j = text:find('["\\]', i) or #text + 1
      parts[#parts + 1] = text:sub(i, j - 1)
      i = j
    end
  end
end

local function decode_container(text, pos, close, read_item)
  local result, i = {}, skip(text, pos + 1)
  if text:sub(i, i) == close then return result, i + 1 end
  while true do
    i = read_item(result, i)
    i = skip(text, i)
    local c = text:sub(i, i)
    if c == close then return result, i + 1 end
    if c ~= "," then json_error(text, i, "expected , or " .. close) end
    i = skip(text, i + 1)
  end
end

decode_value = function(text, pos)
  pos = skip(text, pos)
  local c = text:sub(pos, pos)
  if c == "{" then
    return decode_container(text, pos, "}", function(result, i)
      if text:sub(i, i) ~= '"' then json_error(text, i, "expected a key") end
      local key
      key, i = decode_string(text, i)
      i = skip(text, i)
      if text:sub(i, i) ~= ":" then json_error(text, i, "expected :") end
      result[key], i = decode_value(text, i + 1)
      return i
    end)
  elseif c == "[" then
    return decode_container(text, pos, "]", function(result, i)
      local value
      value, i = decode_value(text, i)
      result[#result + 1] = value
      return i
    end)
  elseif c == '"' then
    return decode_string(text, pos)
  end
  for word, value in pairs({ ["true"] = true, ["false"] = false, ["null"] = M.null }) do
    if text:sub(pos, pos + #word - 1) == word then return value, pos + #word end
  end
  local number = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
  if number and number ~= "" and tonumber(number) then return tonumber(number), pos + #number end
  json_error(text, pos, "unexpected character")
end

M.null = setmetatable({}, { __tostring = function() return "null" end })

--- Decode one JSON value; returns value or nil, message.
function M.json_decode(text)
  local ok, value, pos = pcall(decode_value, text, 1)
  if not ok then return nil, value end
  if skip(text, pos) <= #text then return nil, "trailing characters after JSON" end
  return value
end

---------------------------------------------------------------------------------------------------------------
-- Settings in ExtState

function M.load_settings()
  local settings = {}
  for _, key in ipairs(M.SETTING_ORDER) do
    local value = reaper.GetExtState(M.SECTION, key)
    settings[key] = value ~= "" and value or M.DEFAULTS[key]
  end
  return settings
end

function M.save_settings(settings)
  for _, key in ipairs(M.SETTING_ORDER) do
    reaper.SetExtState(M.SECTION, key, tostring(settings[key] or ""), true)
  end
end

--- Check user-entered settings; returns a table of cleaned settings or nil, message.
function M.validate_settings(settings)
  local cleaned = {}
  for _, key in ipairs(M.SETTING_ORDER) do cleaned[key] = (settings[key] or ""):match("^%s*(.-)%s*$") end
  if cleaned.bridge_command == "" then return nil, "The bridge command must not be empty." end
  local cfg = tonumber(cleaned.cfg_scale)
  if not cfg or cfg < 0 or cfg > 20 then return nil, "CFG scale must be a number from 0 to 20." end
  local temperature = tonumber(cleaned.temperature)
  if not temperature or temperature < 0 or temperature > 5 then return nil, "Temperature must be a number from 0 to 5." end
  if cleaned.seed ~= "" and not cleaned.seed:match("^%d+$") then
    return nil, "Seed must be a whole number, or blank for a random one."
  end
  local variations = tonumber(cleaned.variations)
  if not variations or variations ~= math.floor(variations) or variations < 1 or variations > 8 then
    return nil, "Variations must be a whole number from 1 to 8."
  end
  return cleaned
end

---------------------------------------------------------------------------------------------------------------
-- Running the bridge command line

function M.is_windows()
  return reaper.GetOS():match("^Win") ~= nil
end

--- Quote one argument for the platform's command line: CreateProcess rules on Windows, /bin/sh elsewhere.
function M.quote(arg, windows)
  arg = tostring(arg)
  if windows == nil then windows = M.is_windows() end
  if windows then
    -- backslashes before a quote (or the end) are doubled, the quote itself escaped
    local escaped = arg:gsub('(\\*)"', function(slashes) return slashes .. slashes .. '\\"' end)
    escaped = escaped:gsub("(\\+)$", "%1%1")
    return '"' .. escaped .. '"'
  end
  return "'" .. arg:gsub("'", "'\\''") .. "'"
end

--- The bridge command (a user setting, possibly with arguments of its own) followed by quoted arguments.
function M.command_line(bridge_command, args)
  local parts = { bridge_command }
  for _, arg in ipairs(args) do parts[#parts + 1] = M.quote(arg) end
  return table.concat(parts, " ")
end

--- Run `accompgen-bridge ARGS...` and decode the JSON object it prints.
-- Returns the object, or nil and a message a user can act on.
function M.call_bridge(settings, args, timeout_ms)
  local output = reaper.ExecProcess(M.command_line(settings.bridge_command, args), timeout_ms or 20000)
  if not output then
    return nil, "The bridge command did not finish in time: " .. settings.bridge_command
  end
  local code, text = output:match("^(%-?%d+)\r?\n(.*)$")
  code = tonumber(code)
  local last_line = (text or ""):match("([^\r\n]*)[\r\n]*$") or ""
  local reply = M.json_decode(last_line)
  if type(reply) == "table" then
    if reply.error then return nil, reply.message or reply.error, reply end
    return reply
  end
  if code == 127 or code == 9009 or (text or ""):lower():find("not found") or (text or ""):find("not recognized") then
    return nil, ("The bridge command '%s' was not found. Install AccompGen (pip install accompgen) "
      .. "and set the command in AccompGen: Settings."):format(settings.bridge_command)
  end
  return nil, ("The bridge command failed (exit %s): %s"):format(tostring(code), (text or ""):sub(1, 300))
end

function M.read_status(path)
  local file = io.open(path, "r")
  if not file then return nil end
  local text = file:read("a")
  file:close()
  return M.json_decode(text)
end

---------------------------------------------------------------------------------------------------------------
-- Where a take's audio lies

local function root_source(take)
  local source = reaper.GetMediaItemTake_Source(take)
  local offset, reversed = 0, false
  while true do
    local parent = reaper.GetMediaSourceParent(source)
    if not parent then break end
    local ok, section_offset, _, is_reversed = reaper.PCM_Source_GetSectionInfo(source)
    if ok then
      offset = offset + section_offset
      reversed = reversed or is_reversed
    end
    source = parent
  end
  return source, offset, reversed
end

--- The file and region the bridge must read for an item, or why the take must be rendered first.
-- Returns region {file, start, length, position} or nil, reason_to_render, or nil, nil, error message.
function M.item_region(item)
  local take = reaper.GetActiveTake(item)
  if not take then return nil, nil, "the item has no take" end
  if reaper.TakeIsMIDI(take) then return nil, nil, "it is a MIDI item: select an audio take" end
  local source, section_offset, reversed = root_source(take)
  local file = reaper.GetMediaSourceFileName(source)
  if file == "" or not reaper.file_exists(file) then
    return nil, nil, ("its source file is offline or missing (%s)"):format(file ~= "" and file or "no file")
  end
  local position = reaper.GetMediaItemInfo_Value(item, "D_POSITION")
  local length = reaper.GetMediaItemInfo_Value(item, "D_LENGTH")
  local start = section_offset + reaper.GetMediaItemTakeInfo_Value(take, "D_STARTOFFS")
  local region = { file = file, start = start, length = length, position = position }
  if reaper.TakeFX_GetCount(take) > 0 then return region, "take FX" end
  if reaper.GetTakeNumStretchMarkers(take) > 0 then return region, "stretch markers" end
  if reversed then return region, "a reversed take" end
  if reaper.GetMediaItemTakeInfo_Value(take, "D_PLAYRATE") ~= 1 then return region, "a playrate other than 1" end
  local source_length = reaper.GetMediaSourceLength(source)
  if start < 0 or start + length > source_length + 1e-6 then return region, "a looped item" end
  return region
end

---------------------------------------------------------------------------------------------------------------
-- Project edits

local function selected_items()
  local items = {}
  for i = 0, reaper.CountSelectedMediaItems(0) - 1 do items[#items + 1] = reaper.GetSelectedMediaItem(0, i) end
  return items
end

local function select_only(items)
  reaper.SelectAllMediaItems(0, false)
  for _, item in ipairs(items) do reaper.SetMediaItemSelected(item, true) end
end

--- Render the item's active take to a new take (FX, playrate, stretch markers, reversal and looping applied),
-- read its file, then delete that temporary take again. The selection and the active take are restored.
-- Returns the rendered file (the caller deletes it when its job has ended) or nil, message.
function M.render_region(item)
  local selection, original = selected_items(), reaper.GetActiveTake(item)
  reaper.Undo_BeginBlock()
  reaper.PreventUIRefresh(1)
  select_only({ item })
  reaper.Main_OnCommand(M.CMD_RENDER_TO_NEW_TAKE, 0)
  local rendered = reaper.GetActiveTake(item)
  local file
  if rendered and rendered ~= original then
    file = reaper.GetMediaSourceFileName(reaper.GetMediaItemTake_Source(rendered))
    reaper.Main_OnCommand(M.CMD_DELETE_ACTIVE_TAKE, 0)
    reaper.SetActiveTake(original)
  end
  select_only(selection)
  reaper.PreventUIRefresh(-1)
  reaper.Undo_EndBlock("AccompGen: render vocal take for generation", -1)
  if not file or file == "" then return nil, "REAPER could not render the take" end
  return file
end

local function track_name(track)
  local _, name = reaper.GetSetMediaTrackInfo_String(track, "P_NAME", "", false)
  if name == "" then name = ("Track %d"):format(math.floor(reaper.GetMediaTrackInfo_Value(track, "IP_TRACKNUMBER"))) end
  return name
end

--- Insert finished jobs: per vocal track one new track right under it, per job one item at the vocal item's
-- position and length, every variation a take named by its seed. One undo block, UI refresh held meanwhile.
function M.insert_accompaniments(jobs)
  local finished = {}
  for _, job in ipairs(jobs) do
    if job.state == "done" and job.outputs and #job.outputs > 0 then finished[#finished + 1] = job end
  end
  if #finished == 0 then return 0 end
  reaper.Undo_BeginBlock()
  reaper.PreventUIRefresh(1)
  local created = {}
  for _, job in ipairs(finished) do
    local vocal_track = job.track
    local track = created[vocal_track]
    if not track then
      local index = math.floor(reaper.GetMediaTrackInfo_Value(vocal_track, "IP_TRACKNUMBER")) -- 1-based: next slot
      reaper.InsertTrackAtIndex(index, true)
      track = reaper.GetTrack(0, index)
      reaper.GetSetMediaTrackInfo_String(track, "P_NAME", track_name(vocal_track) .. " - accompaniment", true)
      created[vocal_track] = track
    end
    local item = reaper.AddMediaItemToTrack(track)
    reaper.SetMediaItemInfo_Value(item, "D_POSITION", job.position)
    reaper.SetMediaItemInfo_Value(item, "D_LENGTH", job.length)
    for i, path in ipairs(job.outputs) do
      local take = reaper.AddTakeToMediaItem(item)
      reaper.SetMediaItemTake_Source(take, reaper.PCM_Source_CreateFromFile(path))
      reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", ("AccompGen seed %d"):format(job.seed + i - 1), true)
      if i == 1 then reaper.SetActiveTake(take) end
    end
  end
  reaper.PreventUIRefresh(-1)
  reaper.Undo_EndBlock("AccompGen: insert accompaniment", -1)
  reaper.UpdateArrange()
  return #finished
end

---------------------------------------------------------------------------------------------------------------
-- The progress window

M.WINDOW = { w = 440, row = 22, margin = 12, button_w = 80, button_h = 24 }

local function draw_bar(x, y, w, h, fraction)
  gfx.set(0.25, 0.25, 0.25, 1)
  gfx.rect(x, y, w, h, 1)
  gfx.set(0.35, 0.7, 0.45, 1)
  gfx.rect(x, y, math.floor(w * math.max(0, math.min(1, fraction))), h, 1)
end

function M.open_window(rows)
  local layout = M.WINDOW
  gfx.init("AccompGen", layout.w, layout.margin * 3 + rows * layout.row * 2 + layout.button_h)
  gfx.setfont(1, "Arial", 15)
end

--- Draw one frame; returns "cancel" when the user pressed Cancel, Esc or closed the window.
function M.draw_window(jobs)
  local layout = M.WINDOW
  local char = gfx.getchar()
  if char < 0 or char == 27 then return "cancel" end
  gfx.set(0.12, 0.12, 0.12, 1)
  gfx.rect(0, 0, gfx.w, gfx.h, 1)
  local y = layout.margin
  for _, job in ipairs(jobs) do
    gfx.set(0.9, 0.9, 0.9, 1)
    gfx.x, gfx.y = layout.margin, y
    gfx.printf("%s: %s", job.label, job.message or job.state)
    draw_bar(layout.margin, y + layout.row, gfx.w - 2 * layout.margin, layout.row / 2, job.fraction or 0)
    y = y + layout.row * 2
  end
  local bx, by = gfx.w - layout.margin - layout.button_w, gfx.h - layout.margin - layout.button_h
  gfx.set(0.35, 0.35, 0.35, 1)
  gfx.rect(bx, by, layout.button_w, layout.button_h, 1)
  gfx.set(1, 1, 1, 1)
  gfx.x, gfx.y = bx + 18, by + 4
  gfx.printf("%s", "Cancel")
  gfx.update()
  local clicked = gfx.mouse_cap & 1 == 1
  local inside = gfx.mouse_x >= bx and gfx.mouse_x <= bx + layout.button_w and gfx.mouse_y >= by
    and gfx.mouse_y <= by + layout.button_h
  if clicked and inside then return "cancel" end
end

function M.message(text)
  reaper.ShowMessageBox(text, "AccompGen", 0)
end

return M
