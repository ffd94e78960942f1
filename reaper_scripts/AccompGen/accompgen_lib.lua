-- @noindex
-- AccompGen shared library for the ReaScripts: settings, bridge calls, item regions, JSON, the progress window.
-- Loaded with dofile() from the scripts' own folder.
--
-- REAPER's Lua has no sockets, so the scripts run the `accompgen-bridge` command line. reaper.ExecProcess is not a
-- shell: REAPER splits the command line itself, and it blocks the UI while it waits. So every call is started
-- without waiting, its answer written by the bridge to a reply file the script polls from its defer loop, and
-- whatever comes from the user or the project (paths with quotes, spaces, any letters) travels in a JSON request
-- file, never on the command line.

local M = {}

M.SECTION = "AccompGen"
M.DEFAULTS = {
  bridge_command = "accompgen-bridge",
  bundle = "",
  cfg_scale = "", -- blank: the bundle's own, tuned for its model
  temperature = "",
  seed = "",
  variations = "1",
  device = "auto", -- chosen from the bridge's own list (AccompGen: Choose bundle and device), not typed
}
M.SETTING_ORDER = { "bridge_command", "bundle", "cfg_scale", "temperature", "seed", "variations" } -- the dialog's
M.CAPTIONS = "Bridge command (full path),Bundle folder (blank = default),CFG scale (blank = bundle's),"
  .. "Temperature (blank = bundle's),Seed (blank = random),Variations"

-- REAPER action ids used by the scripts.
M.CMD_RENDER_TO_NEW_TAKE = 40601 -- Item: Render items to new take (take FX and item properties, not track FX)
M.CMD_APPLY_TRACK_FX = 40209 -- Item: Apply track/take FX to items (also the track's FX: pitch correction sits there)
M.CMD_DELETE_ACTIVE_TAKE = 40129 -- Take: Delete active take from items
M.CMD_BUILD_MISSING_PEAKS = 40047 -- Peaks: Build any missing peaks
M.CMD_RENDER_STEMS = 41719 -- Track: Render selected area of tracks to stereo stem tracks (and mute originals)

M.MIN_VERSION = 6.0 -- REAPER 6 and 7; InsertTrackInProject (7.18) is used where it exists

M.REPLY_TIMEOUT_S = 30 -- a bridge call whose reply file has not appeared by then failed
M.HEARTBEAT_STALE_S = 10 -- a status file older than this while its job is unfinished: is the bridge alive?

-- Formats every libsndfile the bridge runs on reads; anything else is rendered to a WAV first.
M.READABLE = { wav = true, wave = true, flac = true, aif = true, aiff = true, ogg = true }

local script_dir = select(2, reaper.get_action_context()):match("^(.*[/\\])")
M.LIMITS = dofile(script_dir .. "accompgen_limits.lua")

-- REAPER 6 runs Lua 5.3, which starts every script with the same random sequence: the same "random" seed each run.
math.randomseed(os.time() + math.floor(reaper.time_precise() * 1000) % 1000000)

--- nil when this REAPER can run the scripts, else a message naming the version needed.
function M.unsupported_reaper()
  local version = reaper.GetAppVersion()
  local number = tonumber(version:match("^(%d+%.%d+)"))
  if number and number >= M.MIN_VERSION then return nil end
  return ("AccompGen needs REAPER %.1f or newer; this is REAPER %s. Update REAPER from reaper.fm."):format(
    M.MIN_VERSION, version)
end

--- Run fn() inside one undo block with the UI refresh held, and close both whatever happens: an error in fn must
-- not leave REAPER's undo history or its drawing blocked. Returns fn's results, or nil, the error message.
function M.in_undo_block(proj, description, fn)
  reaper.Undo_BeginBlock2(proj)
  reaper.PreventUIRefresh(1)
  local results = table.pack(pcall(fn))
  reaper.PreventUIRefresh(-1)
  reaper.Undo_EndBlock2(proj, description, -1)
  if not results[1] then return nil, tostring(results[2]) end
  return table.unpack(results, 2, results.n)
end

---------------------------------------------------------------------------------------------------------------
-- JSON (replies and status files in, request files out)

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

local function encode_string(text)
  return '"' .. text:gsub('[%c"\\]', function(c)
    local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
    return named[c] or ("\\u%04x"):format(c:byte())
  end) .. '"'
end

--- Encode a flat table of strings, numbers and booleans as a JSON object (keys sorted: stable files).
function M.json_encode_object(object)
  local keys = {}
  for key in pairs(object) do keys[#keys + 1] = key end
  table.sort(keys)
  local parts = {}
  for _, key in ipairs(keys) do
    local value = object[key]
    local encoded = type(value) == "string" and encode_string(value)
      or type(value) == "number" and (math.type(value) == "integer" and tostring(value) or ("%.17g"):format(value))
      or tostring(value)
    parts[#parts + 1] = encode_string(key) .. ":" .. encoded
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

---------------------------------------------------------------------------------------------------------------
-- Settings in ExtState

function M.load_settings()
  local settings = {}
  for key, default in pairs(M.DEFAULTS) do
    local value = reaper.GetExtState(M.SECTION, key)
    settings[key] = value ~= "" and value or default
  end
  return settings
end

--- A folder path without trailing separators or "." parts, with / for \ on Windows (where both separate).
local function plain_folder(path)
  if M.is_windows() then path = path:gsub("\\", "/") end
  path = path:gsub("/%./", "/"):gsub("/%.$", ""):gsub("(.)/+$", "%1")
  return path
end

--- The name a request gives for the bundle chosen in Settings (its folder's), or nil: the bridge's default.
function M.bundle_name(settings)
  return plain_folder(settings.bundle):match("([^/]+)$")
end

--- From a ping's reply: the bundle the bridge serves as the one chosen in Settings (the same name and, when the
-- bridge says where its bundles lie, the same folder), or nil.
function M.served_as_chosen(ping_reply, settings)
  local name = M.bundle_name(settings)
  for _, bundle in ipairs(ping_reply.bundles or {}) do
    local same_folder = not bundle.path or plain_folder(bundle.path) == plain_folder(settings.bundle)
    if bundle.name == name and same_folder then return bundle end
  end
  return nil
end

--- Store the settings `settings` holds (others keep their stored value).
function M.save_settings(settings)
  for key in pairs(M.DEFAULTS) do
    if settings[key] ~= nil then reaper.SetExtState(M.SECTION, key, tostring(settings[key]), true) end
  end
end

local LABELS = { cfg_scale = "CFG scale", temperature = "Temperature" }

local function in_limits(name, value)
  local low, high = M.LIMITS[name][1], M.LIMITS[name][2]
  local message = ("%s must be a number from %g to %g."):format(LABELS[name] or name, low, high)
  return value ~= nil and value >= low and value <= high, message
end

--- Check user-entered settings; returns a table of cleaned settings or nil, message.
function M.validate_settings(settings)
  local cleaned = {}
  for _, key in ipairs(M.SETTING_ORDER) do cleaned[key] = (settings[key] or ""):match("^%s*(.-)%s*$") end
  if cleaned.bridge_command == "" then return nil, "The bridge command must not be empty." end
  for _, key in ipairs({ "cfg_scale", "temperature" }) do
    if cleaned[key] ~= "" then
      local ok, message = in_limits(key, tonumber(cleaned[key]))
      if not ok then return nil, message .. " Or blank for the bundle's own." end
    end
  end
  if cleaned.seed ~= "" then
    local ok = cleaned.seed:match("^%d+$") and in_limits("seed", tonumber(cleaned.seed))
    if not ok then return nil, ("Seed must be a whole number from 0 to %d, or blank."):format(M.LIMITS.seed[2]) end
  end
  local variations = tonumber(cleaned.variations)
  if not variations or variations ~= math.floor(variations) or not in_limits("variations", variations) then
    return nil, ("Variations must be a whole number from %d to %d."):format(M.LIMITS.variations[1],
      M.LIMITS.variations[2])
  end
  return cleaned
end

---------------------------------------------------------------------------------------------------------------
-- Command lines as REAPER splits them

function M.is_windows()
  return reaper.GetOS():match("^Win") ~= nil
end

--- Quote one argument for reaper.ExecProcess. Windows hands the line to the program, which splits it by the C
-- runtime's rules (double quotes; backslashes double before a quote). Elsewhere REAPER splits it itself: ", '
-- and ` each group words and nothing else is special, so the argument goes in whichever of them it lacks.
function M.quote(arg, windows)
  arg = tostring(arg)
  if windows == nil then windows = M.is_windows() end
  if windows then
    local escaped = arg:gsub('(\\*)"', function(slashes) return slashes .. slashes .. '\\"' end)
    escaped = escaped:gsub("(\\+)$", "%1%1")
    return '"' .. escaped .. '"'
  end
  for _, mark in ipairs({ '"', "'", "`" }) do
    if not arg:find(mark, 1, true) then return mark .. arg .. mark end
  end
  return nil, ("%s holds \", ' and ` at once: REAPER cannot pass it to a program"):format(arg)
end

--- Split a command line the way REAPER does on macOS and Linux (for finding the program of a command).
function M.split_command(line)
  local words, i = {}, 1
  while i <= #line do
    local c = line:sub(i, i)
    if c:match("%s") then
      i = i + 1
    elseif c == '"' or c == "'" or c == "`" then
      local close = line:find(c, i + 1, true) or #line + 1
      words[#words + 1] = line:sub(i + 1, close - 1)
      i = close + 1
    else
      local stop = line:find("[%s\"'`]", i) or #line + 1
      words[#words + 1] = line:sub(i, stop - 1)
      i = stop
    end
  end
  return words
end

-- Python versions whose `pip install --user` folders are searched.
local PYTHON_MINORS = { 9, 10, 11, 12, 13, 14 }

--- Where pip puts commands outside REAPER's PATH: --user installs (~/.local/bin on Linux, ~/Library/Python/3.X/bin
-- on macOS, %APPDATA%\Python\Python3X\Scripts on Windows) and Homebrew's and /usr/local's bin folders.
function M.pip_script_folders(home, windows)
  local folders = {}
  if windows then
    local appdata = os.getenv("APPDATA") or (home .. "\\AppData\\Roaming")
    for _, minor in ipairs(PYTHON_MINORS) do
      folders[#folders + 1] = ("%s\\Python\\Python3%d\\Scripts"):format(appdata, minor)
    end
    return folders
  end
  folders[1], folders[2], folders[3] = home .. "/.local/bin", "/usr/local/bin", "/opt/homebrew/bin"
  for _, minor in ipairs(PYTHON_MINORS) do
    folders[#folders + 1] = ("%s/Library/Python/3.%d/bin"):format(home, minor)
  end
  return folders
end

local function is_absolute(path)
  return path:match("^/") or path:match("^%a:[/\\]") or path:match("^\\\\")
end

--- On Windows, the console-less launcher pip installs beside accompgen-bridge.exe (accompgen-bridgew.exe): no
-- console window flashes at each call, and none can be closed to kill a bridge started from REAPER.
local function windowless(program, rest)
  local folder, name = program:match("^(.*[/\\])(accompgen%-bridge)%.exe$")
  if folder and reaper.file_exists(folder .. name .. "w.exe") then
    return M.quote(folder .. name .. "w.exe", true) .. rest
  end
end

--- What follows the program in a command line (its arguments, with their leading space).
local function after_program(command, program)
  local stop = command:find(program, 1, true) + #program
  if command:sub(stop, stop):match("[\"'`]") then stop = stop + 1 end -- the program's closing quote
  return command:sub(stop)
end

--- The bridge command with its program as an absolute path: REAPER started from the macOS Finder sees only
-- PATH=/usr/bin:/bin:/usr/sbin:/sbin, so a bare name would not be found. Searches the PATH REAPER has, then the
-- places pip puts scripts. Returns the command or nil, message.
function M.resolve_command(command)
  local windows = M.is_windows()
  if reaper.file_exists(command) then -- a path with spaces, typed without quotes
    return windows and windowless(command, "") or M.quote(command)
  end
  local words = M.split_command(command)
  local program = words[1] or ""
  if is_absolute(program) then
    if reaper.file_exists(program) then
      return windows and windowless(program, after_program(command, program)) or command
    end
    return nil, ("%s was not found: set the full path of accompgen-bridge in AccompGen: Settings."):format(program)
  end
  local separator, slash = windows and ";" or ":", windows and "\\" or "/"
  local home = os.getenv("HOME") or os.getenv("USERPROFILE") or ""
  local folders = {}
  for folder in ((os.getenv("PATH") or "") .. separator):gmatch("([^" .. separator .. "]*)" .. separator) do
    if folder ~= "" then folders[#folders + 1] = folder end
  end
  for _, folder in ipairs(M.pip_script_folders(home, windows)) do folders[#folders + 1] = folder end
  for _, folder in ipairs(folders) do
    for _, suffix in ipairs(windows and { ".exe", "" } or { "" }) do
      local candidate = folder .. slash .. program .. suffix
      if reaper.file_exists(candidate) then
        local rest = command:sub(#program + 1)
        return windows and windowless(candidate, rest) or M.quote(candidate, windows) .. rest
      end
    end
  end
  return nil, ("%s was not found (REAPER looked in its PATH and where pip installs commands): "
    .. "set its full path in AccompGen: Settings, e.g. /home/me/accompgen/.venv/bin/accompgen-bridge."):format(program)
end

---------------------------------------------------------------------------------------------------------------
-- Calls to the bridge: started without waiting, answered through files

--- What every action checks first: a REAPER it can run on, and the bridge command, made absolute in `settings`.
-- Returns true, or nil and the message to show.
function M.prepare(settings)
  local problem = M.unsupported_reaper()
  if problem then return nil, problem end
  local command
  command, problem = M.resolve_command(settings.bridge_command)
  if not command then return nil, problem end
  settings.bridge_command = command
  return true
end

--- `prepare`, then `start_call`: what an action that makes one bridge call starts with. Returns the call, or nil and
-- the message to show.
function M.start_bridge_call(settings, args)
  local ready, problem = M.prepare(settings)
  if not ready then return nil, problem end
  return M.start_call(settings, args)
end

--- A folder of the script's own for request and reply files.
function M.work_dir()
  local dir = reaper.GetResourcePath() .. "/Data/AccompGen"
  reaper.RecursiveCreateDirectory(dir, 0)
  return dir
end

local call_count = 0

--- A fresh file name in the work folder.
function M.work_file(kind)
  call_count = call_count + 1
  return ("%s/%s-%d-%d-%d.json"):format(M.work_dir(), kind, os.time(), math.random(0, 1 << 30), call_count)
end

function M.write_file(path, text)
  local file, err = io.open(path, "wb")
  if not file then return nil, err end
  file:write(text)
  file:close()
  return true
end

--- Start `accompgen-bridge ARGS... --reply FILE` and return at once. Returns a call {reply = FILE, started = t}
-- for `poll`, or nil, message when the program is not there.
function M.start_call(settings, args)
  local program = M.split_command(settings.bridge_command)[1] or ""
  if not (is_absolute(program) and reaper.file_exists(program)) then
    return nil, ("The bridge command %s was not found: set its full path in AccompGen: Settings."):format(program)
  end
  local reply = M.work_file("reply")
  local parts = { settings.bridge_command }
  for _, arg in ipairs(args) do
    local quoted, err = M.quote(arg)
    if not quoted then return nil, err end
    parts[#parts + 1] = quoted
  end
  parts[#parts + 1] = "--reply"
  parts[#parts + 1] = M.quote(reply)
  -- -2: no wait, minimised (Windows); nil: the program could not be started at all
  if reaper.ExecProcess(table.concat(parts, " "), M.is_windows() and -2 or -1) == nil then
    return nil, ("REAPER could not start %s: check the bridge command in AccompGen: Settings."):format(program)
  end
  return { reply = reply, started = reaper.time_precise() }
end

--- Where a started call stands: "running"; "done", reply; or "failed", message (and the reply, if any).
function M.poll(call)
  local reply = M.read_json(call.reply)
  if reply ~= nil then
    os.remove(call.reply)
    if type(reply) ~= "table" then return "failed", "The bridge answered something that is not JSON." end
    if reply.error then return "failed", reply.message or reply.error, reply end
    return "done", reply
  end
  if reaper.time_precise() - call.started > M.REPLY_TIMEOUT_S then
    return "failed", ("The bridge command gave no answer within %d s."):format(M.REPLY_TIMEOUT_S)
  end
  return "running"
end

--- Call fn(state, reply_or_message, reply) once a started call has ended (see `poll`), polling from REAPER's defer
-- loop so that REAPER stays responsive meanwhile.
function M.after_call(call, fn)
  local function wait()
    local state, reply_or_message, reply = M.poll(call)
    if state == "running" then
      reaper.defer(wait)
    else
      fn(state, reply_or_message, reply)
    end
  end
  wait()
end

function M.read_json(path)
  local file = io.open(path, "rb")
  if not file then return nil end
  local text = file:read("a")
  file:close()
  return M.json_decode(text)
end

---------------------------------------------------------------------------------------------------------------
-- What the listener hears of a take, and where it lies

local function root_source(take)
  local source = reaper.GetMediaItemTake_Source(take)
  local offset, reversed, section_length = 0, false, nil
  while true do
    local parent = reaper.GetMediaSourceParent(source)
    if not parent then break end
    local ok, section_offset, length, is_reversed = reaper.PCM_Source_GetSectionInfo(source)
    if ok then
      offset = offset + section_offset
      reversed = reversed or is_reversed
      section_length = section_length or length -- the outermost section is what loops
    end
    source = parent
  end
  return source, offset, reversed, section_length
end

-- Take envelopes that change what is heard: the volume, the pitch (a pitch-enveloped take is in another key than
-- its file) and mute.
local HEARD_ENVELOPES = { "Volume", "Pitch", "Mute" }

local function take_envelope(take)
  for _, name in ipairs(HEARD_ENVELOPES) do
    local envelope = reaper.GetTakeEnvelopeByName(take, name)
    if envelope then
      local _, active = reaper.GetSetEnvelopeInfo_String(envelope, "ACTIVE", "", false)
      if active ~= "0" and reaper.CountEnvelopePoints(envelope) > 0 then return name:lower() end
    end
  end
end

--- Whether the track's FX chain changes what is heard (pitch correction usually sits there).
function M.track_has_fx(track)
  if reaper.GetMediaTrackInfo_Value(track, "I_FXEN") == 0 then return false end
  for fx = 0, reaper.TrackFX_GetCount(track) - 1 do
    if reaper.TrackFX_GetEnabled(track, fx) then return true end
  end
  return false
end

--- Why the bridge would hear other audio than the user does from the file alone, or nil.
local function render_reason(item, take, file, start, length, reversed, loop_length)
  local extension = (file:match("%.([%w]+)$") or ""):lower()
  if not M.READABLE[extension] then return ("a %s file"):format(extension ~= "" and extension or "non-WAV") end
  if M.track_has_fx(reaper.GetMediaItem_Track(item)) then return "track FX" end
  if reaper.TakeFX_GetCount(take) > 0 then return "take FX" end
  if reaper.GetTakeNumStretchMarkers(take) > 0 then return "stretch markers" end
  if reversed then return "a reversed take" end
  if reaper.GetMediaItemTakeInfo_Value(take, "D_PLAYRATE") ~= 1 then return "a playrate other than 1" end
  if reaper.GetMediaItemTakeInfo_Value(take, "D_PITCH") ~= 0 then return "a pitch shift" end
  if reaper.GetMediaItemTakeInfo_Value(take, "I_CHANMODE") ~= 0 then return "a channel mode" end
  local envelope = take_envelope(take)
  if envelope then return ("a take %s envelope"):format(envelope) end
  if start < 0 or start + length > loop_length + 1e-6 then return "a looped source" end
end

--- The file and region the bridge must read for an item, or why the take must be rendered first.
-- Returns region {file, start, length, position}, reason_to_render (or nil), or nil, nil, error message.
function M.item_region(item)
  local take = reaper.GetActiveTake(item)
  if not take then return nil, nil, "the item has no take" end
  if reaper.TakeIsMIDI(take) then return nil, nil, "it is a MIDI item: select an audio take" end
  local source, section_offset, reversed, section_length = root_source(take)
  local file = reaper.GetMediaSourceFileName(source)
  if file == "" or not reaper.file_exists(file) then
    return nil, nil, ("its source file is offline or missing (%s)"):format(file ~= "" and file or "no file")
  end
  local startoffs = reaper.GetMediaItemTakeInfo_Value(take, "D_STARTOFFS")
  local length = reaper.GetMediaItemInfo_Value(item, "D_LENGTH")
  local region = {
    file = file,
    start = section_offset + startoffs,
    length = length,
    position = reaper.GetMediaItemInfo_Value(item, "D_POSITION"),
  }
  -- a section loops over its own length, not over the whole file
  local loop_length = section_length or reaper.GetMediaSourceLength(source)
  return region, render_reason(item, take, file, startoffs, length, reversed, loop_length)
end

---------------------------------------------------------------------------------------------------------------
-- Project edits

function M.selected_items(proj)
  local items = {}
  for i = 0, reaper.CountSelectedMediaItems(proj) - 1 do items[#items + 1] = reaper.GetSelectedMediaItem(proj, i) end
  return items
end

local function select_only(proj, items)
  reaper.SelectAllMediaItems(proj, false)
  for _, item in ipairs(items) do reaper.SetMediaItemSelected(item, true) end
end

--- Render the item's active take to a new take as it is heard (take and track FX, pitch, envelopes, looping), read
-- its file, then delete that temporary take again. The selection and the active take are restored, also when
-- REAPER fails midway. Returns the rendered file (the caller removes it with `remove_render` when its job has
-- ended) or nil, message.
function M.render_region(proj, item)
  local selection, original = M.selected_items(proj), reaper.GetActiveTake(item)
  local command = M.track_has_fx(reaper.GetMediaItem_Track(item)) and M.CMD_APPLY_TRACK_FX
    or M.CMD_RENDER_TO_NEW_TAKE
  local file, problem = M.in_undo_block(proj, "AccompGen: render vocal take for generation", function()
    select_only(proj, { item })
    reaper.Main_OnCommandEx(command, 0, proj)
    local rendered = reaper.GetActiveTake(item)
    local path
    if rendered and rendered ~= original then
      path = reaper.GetMediaSourceFileName(reaper.GetMediaItemTake_Source(rendered))
      reaper.Main_OnCommandEx(M.CMD_DELETE_ACTIVE_TAKE, 0, proj)
      reaper.SetActiveTake(original)
    end
    return path
  end)
  if reaper.ValidatePtr2(proj, item, "MediaItem*") then
    reaper.SetActiveTake(original)
    select_only(proj, selection)
  end
  if not file or file == "" then return nil, problem or "REAPER could not render the take" end
  return file
end

local function item_label(item, index)
  local take = reaper.GetActiveTake(item)
  local name = take and select(2, reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", "", false)) or ""
  return name ~= "" and name or ("item %d"):format(index)
end

--- A job for the vocal item (rendered first when the file alone is not what is heard), or nil and why it is skipped.
-- `origin` ({proj, file}) is where its accompaniment belongs; index numbers items without a name.
function M.job_for_item(origin, item, index)
  local label = item_label(item, index)
  local region, render_reason, problem = M.item_region(item)
  local temp_file
  if region and render_reason then
    temp_file, problem = M.render_region(origin.proj, item)
    if temp_file then
      region.file, region.start = temp_file, 0
    else
      region, problem = nil, ("%s (it has %s)"):format(problem, render_reason)
    end
  end
  if not region then return nil, ("%s skipped: %s"):format(label, problem) end
  return {
    origin = { proj = origin.proj, file = origin.file, guid = M.item_guid(item) },
    label = label, temp_file = temp_file,
    file = region.file, start = region.start, length = region.length, position = region.position,
  }
end

local function track_name(track)
  local _, name = reaper.GetSetMediaTrackInfo_String(track, "P_NAME", "", false)
  if name == "" then name = ("Track %d"):format(math.floor(reaper.GetMediaTrackInfo_Value(track, "IP_TRACKNUMBER"))) end
  return name
end

function M.selected_tracks(proj)
  local tracks = {}
  for i = 0, reaper.CountSelectedTracks(proj) - 1 do tracks[#tracks + 1] = reaper.GetSelectedTrack(proj, i) end
  return tracks
end

--- Render the track's time selection as heard (every item on it, comped lanes, take and track FX) with REAPER's
-- stem render, read the stem's file, then delete the stem track and unmute the track again: the project is left as
-- it was, the track selection too. Returns the rendered file (removed with `remove_render`) or nil, message.
function M.render_time_selection(proj, track)
  local selection, muted = M.selected_tracks(proj), reaper.GetMediaTrackInfo_Value(track, "B_MUTE")
  local before = {}
  for i = 0, reaper.CountTracks(proj) - 1 do before[reaper.GetTrackGUID(reaper.GetTrack(proj, i))] = true end
  local file, problem = M.in_undo_block(proj, "AccompGen: render vocal for generation", function()
    reaper.SetOnlyTrackSelected(track)
    reaper.Main_OnCommandEx(M.CMD_RENDER_STEMS, 0, proj)
    local path
    for i = reaper.CountTracks(proj) - 1, 0, -1 do
      local stem = reaper.GetTrack(proj, i)
      if not before[reaper.GetTrackGUID(stem)] then -- the stem track REAPER added
        local item = reaper.GetTrackMediaItem(stem, 0)
        local take = item and reaper.GetActiveTake(item)
        path = path or (take and reaper.GetMediaSourceFileName(reaper.GetMediaItemTake_Source(take)))
        reaper.DeleteTrack(stem)
      end
    end
    return path
  end)
  if reaper.ValidatePtr2(proj, track, "MediaTrack*") then
    reaper.SetMediaTrackInfo_Value(track, "B_MUTE", muted)
    for i = 0, reaper.CountTracks(proj) - 1 do reaper.SetTrackSelected(reaper.GetTrack(proj, i), false) end
    for _, selected in ipairs(selection) do reaper.SetTrackSelected(selected, true) end
  end
  if not file or file == "" then return nil, problem or "REAPER rendered nothing" end
  return file
end

--- A job for the vocal track's time selection from `start` to `stop`, or nil and why it is skipped.
function M.job_for_time_selection(origin, track, start, stop)
  local label = track_name(track) .. " (time selection)"
  local file, problem = M.render_time_selection(origin.proj, track)
  if not file then return nil, ("%s skipped: %s"):format(label, problem) end
  return {
    origin = { proj = origin.proj, file = origin.file, track_guid = reaper.GetTrackGUID(track) },
    label = label, temp_file = file, file = file, start = 0, length = stop - start, position = start,
  }
end

--- Delete a rendered vocal and the peaks file REAPER wrote beside it.
function M.remove_render(path)
  os.remove(path) -- may fail while the bridge still reads it (Windows): the recording folder keeps it then
  os.remove(path .. ".reapeaks")
end

--- Where a job's accompaniment belongs: the project tab in front now, and the file it holds now.
function M.origin()
  local proj = reaper.EnumProjects(-1)
  return { proj = proj, file = M.project_file(proj) }
end

--- The file a project tab holds ("" for one never saved). A tab keeps its ReaProject* when another .rpp is opened
-- into it, so the pointer alone does not say it is still the same song.
function M.project_file(proj)
  local index = 0
  while true do
    local open, file = reaper.EnumProjects(index)
    if not open then return nil end
    if open == proj then return file or "" end
    index = index + 1
  end
end

function M.item_guid(item)
  local _, guid = reaper.GetSetMediaItemInfo_String(item, "GUID", "", false)
  return guid
end

local function find_by_guid(proj, guid, count, get, guid_of)
  for i = 0, count(proj) - 1 do
    local thing = get(proj, i)
    if guid_of(thing) == guid then return thing end
  end
end

--- The item with this GUID in the project, or nil (deleted, or the tab now holds another song).
function M.find_item(proj, guid)
  return find_by_guid(proj, guid, reaper.CountMediaItems, reaper.GetMediaItem, M.item_guid)
end

--- The track, or nil, with this GUID in the project.
function M.find_track(proj, guid)
  return find_by_guid(proj, guid, reaper.CountTracks, reaper.GetTrack, reaper.GetTrackGUID)
end

--- The vocal's track now, from {proj, file, and guid (a vocal item) or track_guid (a time selection)} recorded
-- when the job began; or nil and why it is gone.
function M.locate_vocal(origin)
  if not reaper.ValidatePtr(origin.proj, "ReaProject*") then return nil, "its project was closed" end
  if M.project_file(origin.proj) ~= origin.file then return nil, "another project was opened in its tab" end
  if origin.track_guid then
    local track = M.find_track(origin.proj, origin.track_guid)
    if not track then return nil, "its vocal track was deleted" end
    return track
  end
  local item = M.find_item(origin.proj, origin.guid)
  if not item then return nil, "its vocal item was deleted" end
  return reaper.GetMediaItem_Track(item)
end

local function depth(track)
  return math.floor(reaper.GetMediaTrackInfo_Value(track, "I_FOLDERDEPTH"))
end

--- A new track with the user's default track settings at index (0-based) of proj. InsertTrackInProject exists only
-- from REAPER 7.18; before, InsertTrackAtIndex works on the project in front, so that tab is brought forward for
-- the insert and the user's tab restored.
local function insert_track(proj, index)
  if reaper.APIExists("InsertTrackInProject") then
    reaper.InsertTrackInProject(proj, index, 1) -- 1: default envelopes and FX
  else
    local front = reaper.EnumProjects(-1)
    if front ~= proj then reaper.SelectProjectInstance(proj) end
    reaper.InsertTrackAtIndex(index, true)
    if front ~= proj then reaper.SelectProjectInstance(front) end
  end
  return reaper.GetTrack(proj, index)
end

--- A new track right after the vocal track and, if the vocal is a folder, after its children: at the vocal's own
-- folder level, so that its sound does not run through a folder's bus it was not in, nor leave the folder the vocal
-- is in.
function M.insert_track_beside(proj, vocal)
  local first = math.floor(reaper.GetMediaTrackInfo_Value(vocal, "IP_TRACKNUMBER")) - 1
  local last, level = first, depth(vocal) -- level: folder depth after `last`, relative to the vocal's
  while level > 0 and last + 1 < reaper.CountTracks(proj) do
    last = last + 1
    level = level + depth(reaper.GetTrack(proj, last))
  end
  local closing = reaper.GetTrack(proj, last)
  local closes = depth(closing)
  local track = insert_track(proj, last + 1)
  -- the last track of the vocal's block closes the folders down to the vocal's level; the new one closes the rest
  reaper.SetMediaTrackInfo_Value(closing, "I_FOLDERDEPTH", closes - level)
  reaper.SetMediaTrackInfo_Value(track, "I_FOLDERDEPTH", math.min(level, 0)) -- a folder left open ends the project
  return track
end

M.VOCAL_KEY = "P_EXT:AccompGen_vocal" -- on an accompaniment item: the GUID of the vocal item it accompanies
M.TIME_SELECTION_MARK = "time selection of track " -- ... or this and the vocal track's GUID

--- A take of `item` per output of the job, each named by its seed, the first made active; an error when REAPER
-- cannot read a file.
local function add_takes(item, job)
  for i, path in ipairs(job.outputs) do
    local source = reaper.PCM_Source_CreateFromFile(path)
    if not source then error(("REAPER cannot read %s"):format(path), 0) end
    local take = reaper.AddTakeToMediaItem(item)
    reaper.SetMediaItemTake_Source(take, source)
    reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", ("AccompGen seed %d"):format(job.seed + i - 1), true)
    if i == 1 then reaper.SetActiveTake(take) end
  end
end

local function add_item(track, job)
  local item = reaper.AddMediaItemToTrack(track)
  reaper.SetMediaItemInfo_Value(item, "D_POSITION", job.position)
  reaper.SetMediaItemInfo_Value(item, "D_LENGTH", job.length)
  -- for "Regenerate this take": the vocal item, or the track of a time selection
  local vocal = job.origin.guid or (M.TIME_SELECTION_MARK .. job.origin.track_guid)
  reaper.GetSetMediaItemInfo_String(item, M.VOCAL_KEY, vocal, true)
  add_takes(item, job)
end

--- Put finished jobs into the song they came from, only where it is still there: a closed tab, another project
-- opened into it, or the vocal item deleted leaves a job's files where they are, listed for the user.
-- `locate(job)` gives where the job goes (or nil and why not); `put(placed)` edits the project, in one undo block
-- closed whatever happens, for a list of {job, target}. Returns how many jobs were placed and lines naming what
-- could not be, with its files.
local function place_jobs(proj, jobs, description, locate, put)
  local stranded, placed = {}, {}
  for _, job in ipairs(jobs) do
    if job.state == "done" and job.outputs and #job.outputs > 0 then
      local target, reason = locate(job)
      if target then
        placed[#placed + 1] = { job = job, target = target }
      else
        stranded[#stranded + 1] = ("%s: %s; its accompaniment is in\n%s"):format(job.label, reason,
          table.concat(job.outputs, "\n"))
      end
    end
  end
  if #placed == 0 then return 0, stranded end
  local done, problem = M.in_undo_block(proj, description, function()
    put(placed)
    return true
  end)
  if not done then
    for _, place in ipairs(placed) do
      stranded[#stranded + 1] = ("%s: inserting failed (%s); undo (Ctrl+Z) removes what was added. Its "
        .. "accompaniment is in\n%s"):format(place.job.label, problem, table.concat(place.job.outputs, "\n"))
    end
    return 0, stranded
  end
  reaper.Main_OnCommandEx(M.CMD_BUILD_MISSING_PEAKS, 0, proj) -- the new takes' waveforms
  reaper.UpdateArrange()
  return #placed, stranded
end

--- Insert finished jobs: per vocal track one new track beside it, per job one item at the vocal item's position
-- and length, every variation a take named by its seed.
function M.insert_accompaniments(proj, jobs)
  local function locate(job) return M.locate_vocal(job.origin) end
  return place_jobs(proj, jobs, "AccompGen: insert accompaniment", locate, function(placed)
    local created = {}
    for _, place in ipairs(placed) do
      local vocal = place.target
      if not created[vocal] then
        created[vocal] = M.insert_track_beside(proj, vocal)
        reaper.GetSetMediaTrackInfo_String(created[vocal], "P_NAME", track_name(vocal) .. " - accompaniment", true)
      end
      add_item(created[vocal], place.job)
    end
  end)
end

--- Add finished jobs of "Regenerate this take" as new active takes of the accompaniment items they were made for.
function M.add_variations(proj, jobs)
  local function locate(job)
    local vocal, reason = M.locate_vocal(job.origin)
    if not vocal then return nil, reason end
    local item = M.find_item(proj, job.target)
    if not item then return nil, "its accompaniment item was deleted" end
    return item
  end
  return place_jobs(proj, jobs, "AccompGen: regenerate accompaniment", locate, function(placed)
    for _, place in ipairs(placed) do add_takes(place.target, place.job) end
  end)
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
    gfx.drawstr(("%s: %s"):format(job.label, job.message or job.state))
    draw_bar(layout.margin, y + layout.row, gfx.w - 2 * layout.margin, layout.row / 2, job.fraction or 0)
    y = y + layout.row * 2
  end
  local bx, by = gfx.w - layout.margin - layout.button_w, gfx.h - layout.margin - layout.button_h
  gfx.set(0.35, 0.35, 0.35, 1)
  gfx.rect(bx, by, layout.button_w, layout.button_h, 1)
  gfx.set(1, 1, 1, 1)
  gfx.x, gfx.y = bx + 18, by + 4
  gfx.drawstr("Cancel")
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
