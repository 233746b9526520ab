# frozen_string_literal: true

# run.rb - runs every test_*.rb here (ctest: ruby_unit). No database, no extension needed.
$LOAD_PATH.unshift(File.expand_path('../lib', __dir__))
$LOAD_PATH.unshift(__dir__)
Dir.glob(File.join(__dir__, 'test_*.rb')).sort.each { |f| require f }
