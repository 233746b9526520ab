# frozen_string_literal: true

# tasker_core.rb - `require 'tasker_core'`, as with Tasker's gem, loads the same library.
require_relative 'tasker'
